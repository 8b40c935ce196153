"""seqmem.vision's ImageEncoder and Captioner (chapter 4, one to many: 06-captioning.ipynb).

Pinned here: the encoder is the page's network, built in the same order from the same seed (so the
page's numbers stay those of its former in-page definition) and computing conv, pool, conv,
linear as written out by hand with torch.nn.functional; the captioner's start is s_0 = cnn(v), its
teacher-forced logits are its steps' (the decoder reading <bos>, then the true words), and greedy
is a beam of one; errors; devices; and a few Adam steps on one batch lower the loss, with a
gradient reaching every parameter.
"""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import seqmem
from seqmem import heads, tasks
from seqmem.text import BOS_ID
from seqmem.vision import Captioner, ImageEncoder

W, E, H = 32, 16, 24


def _captioner(seed=0, H=H):
    torch.manual_seed(seed)
    V = len(tasks.caption_vocab())
    return Captioner(ImageEncoder(W, H), seqmem.Decoder(V, E, seqmem.GRUCell(E, H), context_size=H))


def _images(B=3, seed=0):
    return tasks.digit_captions(B, generator=torch.Generator().manual_seed(seed))


def test_library_and_modules_export_them():
    assert seqmem.Captioner is Captioner and seqmem.ImageEncoder is ImageEncoder
    assert {"Captioner", "ImageEncoder"} <= set(seqmem.__all__) and {"Captioner", "ImageEncoder"} <= set(
        seqmem.vision.__all__)


def test_encoder_is_the_pages_network_from_the_same_seed():
    """The page's former in-page ImageEncoder: these seven layers in this order under ``net``, so
    the same seed gives the same weights (and its state_dict loads)."""
    torch.manual_seed(0)
    ours = ImageEncoder(W, 128)
    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
              nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * W // 2, 128)]
    page = nn.Sequential(*layers)
    assert list(ours.net.state_dict()) == list(page.state_dict())
    for (name, a), b in zip(ours.net.state_dict().items(), page.state_dict().values()):
        assert torch.equal(a, b), name
    x = _images(4).images
    torch.testing.assert_close(ours(x), page(x.unsqueeze(1)), rtol=0, atol=0)


def test_encoder_by_hand():
    torch.manual_seed(0)
    enc = ImageEncoder(W, H).double()
    x = _images().images.double()
    conv1, conv2, linear = enc.net[0], enc.net[3], enc.net[6]
    h = F.max_pool2d(F.relu(F.conv2d(x[:, None], conv1.weight, conv1.bias, padding=1)), 2)  # (B, 16, 4, W / 2)
    h = F.relu(F.conv2d(h, conv2.weight, conv2.bias, padding=1))  # (B, 32, 4, W / 2)
    c = h.reshape(3, -1) @ linear.weight.T + linear.bias  # (B, H)
    out = enc(x)
    assert out.shape == (3, H) and linear.weight.shape == (H, 32 * 4 * 16)
    torch.testing.assert_close(out, c)
    tall = ImageEncoder(12, 5, height=6)
    assert tall(torch.zeros(2, 6, 12)).shape == (2, 5) and tall.net[6].in_features == 32 * 3 * 6


def test_start_is_the_image_vector_and_forward_is_its_steps():
    m = _captioner().double().eval()
    batch = _images(4)
    x, ids = batch.images.double(), batch.target.ids
    B, T = ids.shape
    with torch.no_grad():
        s0 = m.start(x)
        torch.testing.assert_close(s0, m.encoder(x))  # context_size = H: the bridge copies, s_0 = cnn(v)
        logits = m(x, ids)
        assert logits.shape == (B, T, len(tasks.caption_vocab()))
        state, tokens = s0, torch.full((B,), BOS_ID)
        for t in range(T):
            state, logits_t = m.decoder.step(state, tokens)  # the decoder alone, fed the truth
            torch.testing.assert_close(logits_t, logits[:, t])
            tokens = ids[:, t]
        step_state, step_logits = m.step(s0, torch.full((B,), BOS_ID))
        torch.testing.assert_close(step_logits, logits[:, 0])
        assert step_state.shape == (B, H)
    assert seqmem.greedy(m, x, None, max_len=5) == seqmem.beam_search(m, x, None, beam_size=1, max_len=5)


def test_a_bridge_of_another_size_maps_the_context():
    torch.manual_seed(0)
    V = len(tasks.caption_vocab())
    m = Captioner(ImageEncoder(W, 10), seqmem.Decoder(V, E, seqmem.GRUCell(E, H), context_size=10))
    x = _images(2).images
    with torch.no_grad():
        torch.testing.assert_close(m.start(x), m.decoder.bridge(m.encoder(x)))
    assert m.start(x).shape == (2, H)


def test_errors():
    with pytest.raises(ValueError, match="must be even"):
        ImageEncoder(31, H)
    with pytest.raises(ValueError, match="features must be a positive int"):
        ImageEncoder(W, 0)
    enc = ImageEncoder(W, H)
    with pytest.raises(ValueError, match=r"\(B, 8, 32\)"):
        enc(torch.zeros(2, 8, 16))
    with pytest.raises(ValueError, match="floats"):
        enc(torch.zeros(2, 8, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, 8, 32\), got list"):
        enc([[0.0]])
    m = _captioner()
    with pytest.raises(ValueError, match="lengths must be None"):
        m.start(torch.zeros(2, 8, W), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="contexts of 24 features but the encoder gives 12"):
        Captioner(ImageEncoder(W, 12), m.decoder)
    with pytest.raises(ValueError, match="seqmem.Decoder"):
        Captioner(enc, nn.GRUCell(E, H))
    with pytest.raises(ValueError, match="encoder must be an nn.Module"):
        Captioner(lambda images: images, m.decoder)
    with pytest.raises(ValueError, match="target_ids"):
        m(torch.zeros(2, 8, W), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        m(torch.zeros(2, 8, W), torch.zeros(2, 2))


def test_any_image_network_will_do():
    """Exercise 1 of the page: an MLP over the pixels in place of the convolutions."""
    torch.manual_seed(0)
    V = len(tasks.caption_vocab())
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(8 * W, H))
    m = Captioner(mlp, seqmem.Decoder(V, E, seqmem.GRUCell(E, H), context_size=H))
    batch = _images(2)
    assert m(batch.images, batch.target.ids).shape == (*batch.target.ids.shape, V)


def test_devices_follow_the_data(dev):
    m = _captioner().to(dev)
    batch = _images(2)
    logits = m(batch.images.to(dev), batch.target.ids.to(dev))
    assert logits.device.type == dev.type
    assert all(len(c) <= 4 for c in seqmem.greedy(m, batch.images.to(dev), None, max_len=4))


def test_gradients_reach_every_parameter_and_the_loss_falls():
    m = _captioner()
    batch = _images(16, seed=1)

    def loss():
        return heads.cross_entropy(m(batch.images, batch.target.ids), batch.target.ids, batch.target.mask)

    first = loss()
    first.backward()
    for name, p in m.named_parameters():
        if name != "decoder.embedding.weight":  # <pad>'s row gets none; the others do
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(30):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < 0.5 * first.item(), (first.item(), loss().item())

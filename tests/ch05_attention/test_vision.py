"""seqmem.vision (chapter 5): image regions as the memory of an attention decoder (Xu et al., 2015).

Pinned here: a region's feature is relu(W_a vec(strip)) + p_i written out by hand, and it depends
on its own pixel columns and two on either side only; the context is the regions' mean; the
captioner's teacher-forced logits and weights are its steps', every region takes part (the
weights of every word sum to one over all strips), greedy is a beam of one; errors; devices; and
a short training reads digit captions with each digit word's attention on that digit's strips.
"""
import pytest
import torch

import seqmem
from seqmem import tasks
from seqmem.vision import AttentionCaptioner, RegionEncoder

W, M, E, H = 32, 24, 16, 32


def _captioner(seed=0, M=M, H=H):
    torch.manual_seed(seed)
    vocab = tasks.caption_vocab()
    decoder = seqmem.AttentionDecoder(len(vocab), E, seqmem.GRUCell(E + M, H), M, seqmem.AdditiveScore(H, M, H),
                                      "bahdanau", context_size=M)
    return AttentionCaptioner(RegionEncoder(W, M, strip_width=4, channels=8), decoder)


def _images(B=3, seed=0):
    return tasks.digit_captions(B, generator=torch.Generator().manual_seed(seed))


def test_region_features_by_hand():
    torch.manual_seed(0)
    enc = RegionEncoder(W, M, strip_width=4, channels=8).double()
    x = _images().images.double()
    regions, context = enc(x)
    assert regions.shape == (3, 8, M) and context.shape == (3, M)
    grid = enc.conv(x.unsqueeze(1))  # (B, C, 8, W)
    for b in range(3):
        for i in range(8):
            strip = grid[b, :, :, 4 * i:4 * i + 4].reshape(-1)  # channels, rows, columns
            a_i = torch.relu(enc.W_a.weight @ strip + enc.W_a.bias) + enc.position[i]
            torch.testing.assert_close(regions[b, i], a_i)
    torch.testing.assert_close(context, regions.mean(1))


def test_a_region_sees_its_columns_and_two_either_side():
    torch.manual_seed(0)
    enc = RegionEncoder(W, M, strip_width=4, channels=8).double()
    x = torch.rand(2, 8, W, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[:, :, 20] += 1.0  # column 20: strip 5 (columns 20-23), and strip 4 reaches columns 14-21
    changed = (enc(x)[0] - enc(y)[0]).abs().amax(dim=(0, 2)) > 0  # (S,)
    assert changed.tolist() == [i in (4, 5) for i in range(8)]
    assert enc.strip_of_column(20) == 5 and enc.strip_of_column(3) == 0


def test_captioner_forward_is_its_steps_and_every_region_takes_part():
    m = _captioner().double().eval()
    batch = _images(4)
    x, ids = batch.images.double(), batch.target.ids
    logits, weights = m(x, ids, return_weights=True)
    B, T = ids.shape
    assert logits.shape == (B, T, len(tasks.caption_vocab())) and weights.shape == (B, T, 8)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, T, dtype=torch.float64))
    assert (weights > 0).all()  # no region masked out
    state = m.start(x)
    assert state.mask.all() and state.memory.shape == (B, 8, M)
    tokens = torch.full((B,), seqmem.text.BOS_ID)
    for t in range(T):
        state, logits_t = m.step(state, tokens)
        torch.testing.assert_close(logits_t, logits[:, t])
        torch.testing.assert_close(state.decoder.weights, weights[:, t])
        tokens = ids[:, t]
    torch.testing.assert_close(logits, m(x, ids))
    assert seqmem.greedy(m, x, None, max_len=5) == seqmem.beam_search(m, x, None, beam_size=1, max_len=5)


def test_errors():
    with pytest.raises(ValueError, match="multiple of strip_width"):
        RegionEncoder(30, M, strip_width=4)
    with pytest.raises(ValueError, match="strip_width must be a positive int"):
        RegionEncoder(W, M, strip_width=0)
    enc = RegionEncoder(W, M)
    with pytest.raises(ValueError, match=r"\(B, 8, 32\)"):
        enc(torch.zeros(2, 8, 16))
    with pytest.raises(ValueError, match="floats"):
        enc(torch.zeros(2, 8, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="column must lie"):
        enc.strip_of_column(32)
    m = _captioner()
    with pytest.raises(ValueError, match="lengths must be None"):
        m.start(torch.zeros(2, 8, W), torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="regions of 12"):
        AttentionCaptioner(RegionEncoder(W, 12), m.decoder)
    with pytest.raises(ValueError, match="AttentionDecoder"):
        AttentionCaptioner(RegionEncoder(W, M), seqmem.Decoder(13, E, seqmem.GRUCell(E, H)))
    with pytest.raises(ValueError, match="target_ids"):
        m(torch.zeros(2, 8, W), torch.zeros(3, 2, dtype=torch.long))


def test_devices_follow_the_data(dev):
    m = _captioner().to(dev)
    batch = _images(2)
    logits, weights = m(batch.images.to(dev), batch.target.ids.to(dev), return_weights=True)
    assert logits.device.type == dev.type and weights.device.type == dev.type


def test_learns_captions_and_looks_at_each_digit():
    """Seed 0, 200 Adam steps (lr 3e-3) of 64 images: exact match >= 0.6 on 300 test images, and
    each digit word puts at least 80% of its attention, on average, on that digit's two strips
    (measured: 0.77 and 0.96)."""
    m = _captioner(M=32, H=48)
    g = seqmem.seed(0)

    def loss(model, b):
        return seqmem.heads.cross_entropy(model(b.images, b.target.ids), b.target.ids, b.target.mask)

    seqmem.fit(m, lambda i: tasks.digit_captions(64, generator=g), loss, steps=200, lr=3e-3, clip_grad_norm=1.0,
               progress=False)
    test = tasks.digit_captions(300, split="test", generator=torch.Generator().manual_seed(1))
    vocab = tasks.caption_vocab()
    with torch.no_grad():
        words = [vocab.decode(c) for c in seqmem.greedy(m, test.images, None, max_len=6)]
        _, weights = m(test.images, test.target.ids, return_weights=True)  # (B, T, 8)
    exact = sum(w == t.split() for w, t in zip(words, test.target_text)) / 300
    mass = [float(weights[b, k, 2 * k:2 * k + 2].sum()) for b, n in enumerate(test.target.lengths.tolist())
            for k in range(n - 1)]
    assert exact >= 0.6, exact
    assert sum(mass) / len(mass) >= 0.8, sum(mass) / len(mass)

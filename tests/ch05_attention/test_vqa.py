"""seqmem.vqa (chapter 5): visual question answering with question-guided spatial attention.

Pinned here: the region features against the two convolutions written as products with each
cell's pixels, plus the position embedding; the question's state against the GRU on the unpadded
question; the whole forward against the equations by hand in float64 (additive score, softmax
over the regions, weighted sum, answer); the map sums to 1 (1/R for the mean, 0 and image-blind
for the question alone); gradients; errors; devices; and a network that learns.
"""
import pytest
import torch
from torch.nn import functional as F

import seqmem
from helpers import gen
from seqmem.tasks import scenes
from seqmem.vqa import POOLINGS, SpatialAttentionVQA

V = len(scenes.scene_vocab())


def _model(pooling="attention", seed=0):
    torch.manual_seed(seed)
    return SpatialAttentionVQA(V, grid=2, cell=5, features=4, embedding_dim=3, hidden_size=5, attention_size=6,
                               pooling=pooling).double()


def _inputs(seed=0):
    data = scenes.visual_questions(3, grid=2, cell=5, objects=(1, 3), generator=gen(seed))
    return data.images.double(), data.questions, data.lengths


def regions_by_hand(model, images):
    """v_r = relu(W_2 relu(W_1 . patch_r + b_1) + b_2) + p_r for every cell r (row-major): (B, R, F)."""
    conv1, conv2 = model.cnn[0], model.cnn[2]
    c, G = model.cell, model.grid
    out = []
    for b in range(images.shape[0]):
        cells = []
        for r in range(G):
            for col in range(G):
                patch = images[b, :, r * c:(r + 1) * c, col * c:(col + 1) * c].reshape(-1)  # (3 c c,)
                z = torch.relu(conv1.weight.reshape(conv1.out_channels, -1) @ patch + conv1.bias)
                cells.append(torch.relu(conv2.weight[:, :, 0, 0] @ z + conv2.bias))
        out.append(torch.stack(cells))
    return torch.stack(out) + model.position


def forward_by_hand(model, images, questions, lengths):
    v = regions_by_hand(model, images)  # (B, R, F)
    logits, maps = [], []
    for b in range(images.shape[0]):
        q = model.question_encoder(model.embedding(questions[b, :lengths[b]])[None])[0][0, -1]  # (H,)
        s = model.score
        scores = torch.stack([s.w_2.weight[0] @ torch.tanh(s.W_q.weight @ q + s.W_k.weight @ v_r) for v_r in v[b]])
        alpha = torch.exp(scores) / torch.exp(scores).sum()
        c = (alpha[:, None] * v[b]).sum(0)
        a_q = model.W_a.weight @ q + model.W_a.bias
        z = (model.W_c.weight @ c + model.W_c.bias) * a_q + a_q  # (W_c c + b_c) * a + a
        logits.append(model.answer(z))
        maps.append(alpha.reshape(model.grid, model.grid))
    return torch.stack(logits), torch.stack(maps)


def test_regions_by_hand():
    model = _model()
    images, _, _ = _inputs()
    torch.testing.assert_close(model.regions(images), regions_by_hand(model, images))


def test_forward_by_hand():
    model = _model()
    images, questions, lengths = _inputs()
    out = model(images, questions, lengths)
    logits, maps = forward_by_hand(model, images, questions, lengths)
    assert out.logits.shape == (3, 2) and out.attention.shape == (3, 2, 2)
    torch.testing.assert_close(out.logits, logits)
    torch.testing.assert_close(out.attention, maps)
    torch.testing.assert_close(out.attention.sum((1, 2)), torch.ones(3, dtype=torch.float64))


def test_padding_of_questions_changes_nothing():
    model = _model()
    images, questions, lengths = _inputs()
    longer = torch.cat([questions, torch.randint(1, V, (3, 4), generator=gen(9))], dim=1)  # garbage after the end
    for a, b in zip(model(images, questions, lengths), model(images, longer, lengths)):
        torch.testing.assert_close(a, b)


def test_mean_and_question_only():
    images, questions, lengths = _inputs()
    mean = _model("mean")(images, questions, lengths)
    torch.testing.assert_close(mean.attention, torch.full((3, 2, 2), 0.25, dtype=torch.float64))
    blind = _model("none")
    out = blind(images, questions, lengths)
    assert torch.all(out.attention == 0)
    torch.testing.assert_close(blind(torch.rand_like(images), questions, lengths).logits, out.logits)  # image-blind
    assert not torch.allclose(_model("mean")(torch.rand_like(images), questions, lengths).logits, mean.logits)


def test_gradients():
    model = _model()
    images, questions, lengths = _inputs()
    images.requires_grad_()
    model(images, questions, lengths).logits.sum().backward()
    assert images.grad.abs().sum() > 0
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("call, message", [
    (lambda m, x, q, n: m(x[:, :, :9], q, n), r"images must have shape \(B, 3, 10, 10\)"),
    (lambda m, x, q, n: m(x.long(), q, n), "images must be floating point"),
    (lambda m, x, q, n: m(x, q[:2], n), r"questions must have shape \(3, Lq\)"),
    (lambda m, x, q, n: m(x, q.double(), n), "questions must be an integer tensor"),
    (lambda m, x, q, n: m(x, q, n[:2]), r"lengths must have shape \(3\)"),
    (lambda m, x, q, n: m(x, q, n * 0), r"lengths must lie in \[1, Lq"),
    (lambda m, x, q, n: m(x, q, n + q.shape[1]), r"lengths must lie in \[1, Lq"),
    (lambda m, x, q, n: SpatialAttentionVQA(V, pooling="max"), "pooling must be one of"),
    (lambda m, x, q, n: SpatialAttentionVQA(V, grid=0), "grid must be a positive int"),
])
def test_errors(call, message):
    images, questions, lengths = _inputs()
    with pytest.raises(ValueError, match=message):
        call(_model(), images, questions, lengths)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_on_device(dev, pooling):
    model = _model(pooling).to(dev)
    images, questions, lengths = _inputs()
    out = model(images.to(dev), questions.to(dev), lengths.to(dev))
    ref = _model(pooling)(images, questions, lengths)
    assert out.logits.device.type == dev.type
    for a, b in zip(out, ref):
        torch.testing.assert_close(a.cpu(), b)


def _loss(model, batch):
    return F.cross_entropy(model(batch.images, batch.questions, batch.lengths).logits, batch.answers)


def test_attention_learns_where_to_look():
    """2 x 2 cells, 1-2 objects, questions with colour, shape and region; 800 Adam steps (lr 3e-3) of
    32 fresh scenes, seed 0: >= 60 % right on 1,000 fresh scenes (chance 50 %; it reaches 63.4 %), in
    about 8 s. (Learning is slow to start: the answers are balanced scene by scene, so neither the
    image nor the question alone says anything, and only their conjunction does.)"""
    g = seqmem.seed(0)
    model = SpatialAttentionVQA(V, grid=2, cell=8)
    draw = lambda i: scenes.visual_questions(32, grid=2, objects=(1, 2), kinds=(1,), generator=g)  # noqa: E731
    seqmem.fit(model, draw, _loss, steps=800, lr=3e-3, progress=False)
    test = scenes.visual_questions(1000, grid=2, objects=(1, 2), kinds=(1,), generator=gen(1))
    with torch.no_grad():
        out = model(test.images, test.questions, test.lengths)
    accuracy = (out.logits.argmax(-1) == test.answers).float().mean()
    assert accuracy >= 0.6, accuracy

"""seqmem.TransformerLM, the decoder-only language model (chapter 6).

Pinned here: shapes and the state (the last max_len - 1 ids); every bad input a clear error;
causality (changing the characters after t leaves the logits up to t exactly as they were, and the
same check fails on the stack run without its mask); a text longer than max_len is read in windows,
each position from at most max_len tokens, equal to scoring it alone in its window; reading a text
in pieces with the state carried equals reading it at once; tied weights are one tensor; the
attention weights are causal distributions; chapter 1's tooling (next_token_loss, fit,
metrics.perplexity, sample) runs on it; and it learns a periodic text.
"""
import math

import pytest
import torch

import seqmem
from seqmem import lm, metrics
from seqmem.text import Vocab
from helpers import gen

V, D, L = 11, 16, 12


def _model(dev="cpu", **kw):
    torch.manual_seed(0)
    options = dict(d_model=D, nhead=2, num_layers=2, dim_feedforward=32, dropout=0.1, max_len=L)
    options.update(kw)
    return seqmem.TransformerLM(V, **options).double().to(dev).eval()


def _ids(*shape, seed=0, dev="cpu"):
    return torch.randint(V, shape, generator=gen(seed)).to(dev)


@pytest.mark.parametrize("norm_first", [True, False])
def test_shapes_and_state(dev, norm_first):
    model = _model(dev, norm_first=norm_first)
    x = _ids(3, 7, dev=dev)
    logits, state = model(x)
    assert logits.shape == (3, 7, V) and logits.device == x.device and torch.equal(state, x)
    logits, state = model(_ids(3, 9, seed=1, dev=dev), state)  # 7 + 9 > L: the state keeps the last L - 1
    assert logits.shape == (3, 9, V) and state.shape == (3, L - 1)
    assert torch.equal(state, torch.cat([x, _ids(3, 9, seed=1, dev=dev)], 1)[:, -(L - 1):])
    assert (model.encoder.norm is not None) == norm_first  # pre-norm stacks end in a LayerNorm


def test_bad_inputs_are_clear_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"\(B, T\).*integer"):
        model(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(_ids(5))
    with pytest.raises(ValueError, match="at least one token"):
        model(_ids(2, 0))
    with pytest.raises(ValueError, match=r"\[0, 11\)"):
        model(torch.full((2, 3), V))
    with pytest.raises(ValueError, match="batch size B = 2"):
        model(_ids(2, 3), _ids(3, 4))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        seqmem.TransformerLM(V, d_model=15, nhead=2)
    with pytest.raises(ValueError, match="stride"):
        seqmem.TransformerLM(V, d_model=D, nhead=2, max_len=8, stride=9)
    with pytest.raises(ValueError, match="max_len"):
        model.attention_weights(_ids(1, L + 1))
    with pytest.raises(ValueError, match="layer"):
        model.attention_weights(_ids(1, 4), layer=2)


def check_causal(run, x):
    """For every t: new tokens after t leave the logits at 0 ... t unchanged (and change later ones)."""
    before = run(x)
    g = gen(1)
    for t in range(x.shape[1] - 1):
        changed = x.clone()
        shift = torch.randint(1, V, changed[:, t + 1:].shape, generator=g).to(x.device)
        changed[:, t + 1:] = (changed[:, t + 1:] + shift) % V  # every later token different
        after = run(changed)
        torch.testing.assert_close(after[:, :t + 1], before[:, :t + 1], rtol=0, atol=1e-12)
        assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


@pytest.mark.parametrize("norm_first", [True, False])
def test_the_model_does_not_read_the_future(dev, norm_first):
    model = _model(dev, norm_first=norm_first)
    with torch.no_grad():
        check_causal(lambda x: model(x)[0], _ids(3, L, dev=dev))


def test_the_check_catches_a_stack_without_the_mask():
    model = _model()
    unmasked = lambda x: model.head(model.encoder(model.embed(x)))  # the same layers, no causal mask
    with torch.no_grad(), pytest.raises(AssertionError):
        check_causal(unmasked, _ids(3, L))


def test_a_long_text_is_read_in_windows_of_max_len():
    """Position i of a text longer than L is scored in the window that the stride gives it, no wider."""
    model = _model(stride=4)
    x = _ids(2, 30)
    logits, _ = model(x)
    # windows of L = 12: [0, 12) scores 0..11, then [4, 16) scores 12..15, [8, 20) 16..19, ...
    torch.testing.assert_close(logits[:, :L], model.window(x[:, :L]), rtol=0, atol=1e-12)
    for end in range(16, 33, 4):
        start = max(0, min(end, 30) - L)
        part = model.window(x[:, start:min(end, 30)])
        torch.testing.assert_close(logits[:, end - 4:min(end, 30)], part[:, end - 4 - start:], rtol=0, atol=1e-12)


def test_reading_in_pieces_with_the_state_equals_reading_at_once():
    """While the context fits in max_len, carrying the state is reading the whole text."""
    model = _model()
    x = _ids(2, L)
    whole, _ = model(x)
    a, state = model(x[:, :5])
    b, _ = model(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, rtol=0, atol=1e-12)


def test_tied_weights_are_one_tensor():
    model = _model(tie_weights=True)
    assert model.tied and model.head.weight is model.embedding.weight
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in _model().parameters()) - V * D
    assert not _model().tied


def test_attention_weights_are_causal_distributions():
    model = _model(learned_positions=True)
    w = model.attention_weights(_ids(2, 6), layer=1)
    assert w.shape == (2, 2, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 2, 6, dtype=torch.float64))
    below = torch.ones(6, 6, dtype=torch.bool).tril()  # t attends to 1 ... t
    assert not w[..., ~below].any() and (w[..., below] > 0).all()


def test_chapter_one_tooling_runs_on_it():
    text = "the cat sat on the mat. " * 8
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    torch.manual_seed(0)
    model = seqmem.TransformerLM(len(vocab), d_model=D, nhead=2, num_layers=1, dim_feedforward=32, max_len=16)
    loss = lm.next_token_loss(model, lm.random_windows(ids, 4, 16, generator=gen(0)))
    assert loss.dim() == 0 and abs(loss.item() - math.log(len(vocab))) < 1.5
    ppl = metrics.perplexity(model, ids, chunk_len=10, batch_size=2)  # windows and the state at work
    assert 1 < ppl < 10 * len(vocab)
    out = lm.sample(model, vocab, "the c", 40, temperature=0.5, generator=gen(0))  # 45 > max_len
    assert out.startswith("the c") and len(out) == 45 and set(out) <= set(vocab.tokens)
    again = lm.sample(model, vocab, "the c", 40, temperature=0.5, generator=gen(0))
    assert out == again  # a seeded generator repeats the text


def test_it_learns_a_periodic_text():
    """Seed 0: a text of period 7 is predictable after one period; the loss must fall below 0.1 nats."""
    text = "abcdefg" * 60
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    seqmem.seed(0)
    model = seqmem.TransformerLM(len(vocab), d_model=32, nhead=2, num_layers=1, dim_feedforward=64, dropout=0.0,
                                 max_len=16)
    g = gen(0)
    history = seqmem.fit(model, lambda step: lm.random_windows(ids, 16, 16, generator=g), lm.next_token_loss,
                         steps=150, lr=3e-3, progress=False)
    assert history.loss[0] > 1.0 and sum(history.loss[-10:]) / 10 < 0.1
    assert lm.sample(model, vocab, "cde", 14, temperature=0) == "cdefgabcdefgabcde"

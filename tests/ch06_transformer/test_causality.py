"""The decoder's causal mask (chapter 6): position t reads the targets up to t only.

A token model (embedding x sqrt(d_model), sinusoidal positions, seqmem.Transformer, a readout) in
eval mode: changing any target token after position t leaves the outputs at 0 ... t exactly as
they were, and changes a later output (so the check has something to see). The same check fails on
the model called without the mask: the test catches a leak of the future.
"""
import math

import pytest
import torch

import seqmem
from helpers import gen

V, D, B, S, T = 11, 16, 3, 6, 7


class TokenTransformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(V, D)
        self.positions = seqmem.PositionalEncoding(D, max_len=32)
        self.transformer = seqmem.Transformer(D, 2, 2, 2, 32, dropout=0.1, batch_first=True)
        self.readout = torch.nn.Linear(D, V)

    def embed(self, tokens):
        return self.positions(self.embedding(tokens) * math.sqrt(D))  # (B, T, D), section 3.4

    def forward(self, src, tgt, masked=True):
        mask = seqmem.Transformer.generate_square_subsequent_mask(tgt.shape[1], dtype=self.readout.weight.dtype)
        out = self.transformer(self.embed(src), self.embed(tgt), tgt_mask=mask if masked else None)
        return self.readout(out)  # (B, T, V)


def check_causal(run, src, tgt):
    """For every t: new tokens after t leave the logits at 0 ... t unchanged (and do change the later ones)."""
    before = run(src, tgt)
    g = gen(1)
    for t in range(tgt.shape[1] - 1):
        changed = tgt.clone()
        shift = torch.randint(1, V, changed[:, t + 1:].shape, generator=g)
        changed[:, t + 1:] = (changed[:, t + 1:] + shift) % V  # every later token different
        after = run(src, changed)
        torch.testing.assert_close(after[:, :t + 1], before[:, :t + 1], rtol=0, atol=1e-12)
        assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


def _model_and_data():
    torch.manual_seed(0)
    model = TokenTransformer().double().eval()
    g = gen(0)
    return model, torch.randint(V, (B, S), generator=g), torch.randint(V, (B, T), generator=g)


def test_the_decoder_does_not_read_the_future():
    model, src, tgt = _model_and_data()
    with torch.no_grad():
        check_causal(model, src, tgt)


def test_the_check_catches_a_model_without_the_mask():
    model, src, tgt = _model_and_data()
    with torch.no_grad(), pytest.raises(AssertionError):
        check_causal(lambda s, t: model(s, t, masked=False), src, tgt)


def test_the_causal_mask_blocks_the_gradient_from_the_future():
    """The same in gradients: the loss at position t has zero gradient on target embeddings after t."""
    model, src, tgt = _model_and_data()
    x = model.embed(tgt).detach().requires_grad_()  # (B, T, D)
    mask = seqmem.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64)
    out = model.transformer(model.embed(src), x, tgt_mask=mask)
    t = 3
    out[:, t].sum().backward()
    assert not x.grad[:, t + 1:].any() and x.grad[:, :t + 1].abs().sum() > 0

"""seqmem's positional encodings and position-wise feed-forward network (chapter 6).

Pinned here: the sinusoids are the paper's formula entry by entry (even and odd d_model), every
offset k is a rotation of each pair of features (the paper's reason for the choice), the module
adds them to a batch first input; the learned option is a trained table in the state_dict;
FFN(x) = max(0, x W_1 + b_1) W_2 + b_2 by hand; devices; errors.
"""
import math

import pytest
import torch

import seqmem
from helpers import gen


@pytest.mark.parametrize("d_model", [6, 7])
def test_sinusoids_are_the_papers_formula(d_model):
    pe = seqmem.sinusoidal_encoding(50, d_model, dtype=torch.float64)
    assert pe.shape == (50, d_model)
    for pos in range(50):
        for j in range(d_model):
            i = j // 2  # features 2i and 2i + 1 share a wavelength
            angle = pos / 10000 ** (2 * i / d_model)
            expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
            assert abs(pe[pos, j].item() - expected) < 1e-12, (pos, j)


def test_an_offset_is_a_rotation_of_each_pair():
    """PE_{pos+k} = M_k PE_pos, M_k block diagonal with one 2x2 rotation per wavelength, the same for every pos."""
    d, k = 8, 5
    pe = seqmem.sinusoidal_encoding(40, d, dtype=torch.float64)
    for i in range(d // 2):
        w = 1 / 10000 ** (2 * i / d)
        rotation = torch.tensor([[math.cos(k * w), math.sin(k * w)], [-math.sin(k * w), math.cos(k * w)]],
                                dtype=torch.float64)  # [sin(a + b), cos(a + b)] from [sin a, cos a]
        pairs = pe[:, 2 * i:2 * i + 2]  # (T, 2): (sin, cos) of pos * w
        torch.testing.assert_close(pairs[:-k] @ rotation.T, pairs[k:])


def test_the_module_adds_the_sinusoids_to_a_batch_first_input(dev):
    module = seqmem.PositionalEncoding(6, max_len=20).to(dev, torch.float64)
    assert list(module.state_dict()) == []  # a fixed buffer: nothing to load or save
    x = torch.randn(3, 9, 6, generator=gen(0), dtype=torch.float64).to(dev)
    out = module(x)
    assert out.device.type == dev.type
    torch.testing.assert_close(out, x + seqmem.sinusoidal_encoding(9, 6, device=dev, dtype=torch.float64))


def test_learned_positions_are_a_trained_table():
    torch.manual_seed(0)
    module = seqmem.PositionalEncoding(4, max_len=10, learned=True).double()
    assert list(module.state_dict()) == ["weight"] and module.weight.shape == (10, 4)
    assert 0.01 < module.weight.std().item() < 0.04  # N(0, 0.02^2)
    x = torch.randn(2, 6, 4, generator=gen(1), dtype=torch.float64)
    out = module(x)
    torch.testing.assert_close(out, x + module.weight[:6])
    out.sum().backward()
    torch.testing.assert_close(module.weight.grad[:6], torch.full((6, 4), 2.0, dtype=torch.float64))  # B = 2
    assert not module.weight.grad[6:].any()  # positions not seen get no gradient


def test_dropout_after_the_sum_in_training_only():
    module = seqmem.PositionalEncoding(4, dropout=0.5).double()
    x = torch.randn(2, 6, 4, generator=gen(2), dtype=torch.float64)
    torch.manual_seed(3)
    out = module(x)
    torch.manual_seed(3)
    torch.testing.assert_close(out, torch.nn.functional.dropout(x + module.encoding[:6], 0.5))
    torch.testing.assert_close(module.eval()(x), x + module.encoding[:6])


def test_positional_errors():
    module = seqmem.PositionalEncoding(4, max_len=5)
    for make, match in [(lambda: module(torch.randn(5, 4)), r"x must have shape \(B, T, d_model\) with d_model = 4"),
                        (lambda: module(torch.randn(2, 6, 4)), r"T <= max_len = 5, got \(2, 6, 4\)"),
                        (lambda: module(torch.randn(2, 5, 3)), "d_model = 4"),
                        (lambda: module(torch.randn(2, 5, 4, dtype=torch.float64)), "parameters' dtype torch.float32"),
                        (lambda: seqmem.PositionalEncoding(0), "d_model must be a positive int"),
                        (lambda: seqmem.sinusoidal_encoding(0, 4), "length must be a positive int")]:
        with pytest.raises(ValueError, match=match):
            make()


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_is_eq_2_by_hand(activation, dev):
    torch.manual_seed(4)
    ffn = seqmem.PositionwiseFeedForward(4, 16, activation=activation).to(dev, torch.float64)
    assert list(ffn.state_dict()) == ["linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias"]
    x = torch.randn(2, 5, 4, generator=gen(5), dtype=torch.float64).to(dev)
    W1, b1, W2, b2 = ffn.linear1.weight, ffn.linear1.bias, ffn.linear2.weight, ffn.linear2.bias
    pre = x @ W1.T + b1
    hidden = pre.clamp(min=0) if activation == "relu" else 0.5 * pre * (1 + torch.erf(pre / math.sqrt(2)))
    torch.testing.assert_close(ffn(x), hidden @ W2.T + b2)
    torch.testing.assert_close(ffn(x[0, 3]), ffn(x)[0, 3])  # position-wise: each position alone


def test_feed_forward_errors():
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., d_model\) with d_model = 4"):
        seqmem.PositionwiseFeedForward(4, 8)(torch.randn(2, 3))
    with pytest.raises(ValueError, match="activation must be"):
        seqmem.PositionwiseFeedForward(4, 8, activation="swish")

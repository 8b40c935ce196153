"""seqmem.attention.scaled_dot_product_attention (chapter 5): torch's function, from scratch and fused.

Pinned here: both paths equal torch's ``F.scaled_dot_product_attention`` in outputs and in the
gradients of q, k and v, to 1e-6 in float64 and to float32's tolerance, for no mask, a bool mask,
an additive mask, is_causal, a custom scale and broadcast batch dimensions; a query with no key
left (a bool row all False, a float row all -inf) gets a zero output and zero gradients, as in
torch 2.x; dropout as documented; errors.
"""
import pytest
import torch
from torch.nn import functional as F

import seqmem
from seqmem.attention import scaled_dot_product_attention as sdpa

# (B, heads, L, S, E, Ev): self-attention sized, cross-attention with L != S and Ev != E
SHAPES = [(2, 3, 5, 5, 4, 4), (2, 2, 3, 6, 4, 7)]


def _qkv(shape, dtype=torch.float64, seed=0):
    B, h, L, S, E, Ev = shape
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype).requires_grad_() for s in
            ((B, h, L, E), (B, h, S, E), (B, h, S, Ev))]


def _masks(shape, dtype, seed=0):
    """The masks to compare on, each with a query that has no key left (row 1 of the first head)."""
    B, h, L, S, _, _ = shape
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(B, h, L, S, generator=g) < 0.6
    keep[..., 0] = True  # most rows keep a key ...
    keep[0, 0, 1] = False  # ... but one keeps none
    additive = torch.randn(B, 1, L, S, generator=g, dtype=dtype)  # broadcast over the heads
    additive[1, 0, 0] = float("-inf")  # a row of -inf: no key either
    additive[0, 0, 2, :2] = float("-inf")
    return {"none": {}, "bool": dict(attn_mask=keep), "bool (L, S)": dict(attn_mask=keep[0, 0]),
            "additive": dict(attn_mask=additive), "causal": dict(is_causal=True),
            "scale": dict(attn_mask=keep, scale=0.3)}


def _run(fn, qkv, **kwargs):
    """The output and the gradients of q, k and v under a fixed random cotangent."""
    q, k, v = (t.detach().clone().requires_grad_() for t in qkv)
    out = fn(q, k, v, **kwargs)
    cotangent = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    out.backward(cotangent)
    return [out, q.grad, k.grad, v.grad]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", ["none", "bool", "bool (L, S)", "additive", "causal", "scale"])
@pytest.mark.parametrize("fused", [False, True, None])
def test_equals_torch_in_float64_outputs_and_gradients(shape, case, fused):
    qkv = _qkv(shape)
    kwargs = _masks(shape, torch.float64)[case]
    expected = _run(F.scaled_dot_product_attention, qkv, **kwargs)
    got = _run(sdpa, qkv, fused=fused, **kwargs)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", ["bool", "additive", "causal"])
def test_equals_torch_in_float32_and_the_paths_agree(case):
    shape = SHAPES[1]
    qkv = _qkv(shape, torch.float32)
    kwargs = _masks(shape, torch.float32)[case]
    expected = _run(F.scaled_dot_product_attention, qkv, **kwargs)
    scratch, fast = _run(sdpa, qkv, fused=False, **kwargs), _run(sdpa, qkv, fused=True, **kwargs)
    for a, b, c in zip(scratch, fast, expected, strict=True):
        torch.testing.assert_close(a, c)  # float32's default tolerance
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("fused", [False, True])
def test_a_query_with_no_key_gets_zero_output_and_zero_gradients(fused):
    """The documented choice, torch 2.x's: a row with nothing to attend to reads nothing (no NaN)."""
    shape = SHAPES[0]
    qkv = _qkv(shape)
    for kwargs, dead in ((_masks(shape, torch.float64)["bool"], (0, 0, 1)),
                         (_masks(shape, torch.float64)["additive"], (1, 0, 0))):
        out, dq, dk, dv = _run(sdpa, qkv, fused=fused, **kwargs)
        assert not any(t.isnan().any() for t in (out, dq, dk, dv))
        assert not out[dead].any() and not dq[dead].any()
        assert out[0, 1].abs().sum() > 0  # the other rows do read something


def test_reference_is_the_papers_formula_and_broadcasts_the_batch():
    """softmax(Q K^T / sqrt(d_k)) V by hand, with keys and values shared by every head (batch dims broadcast)."""
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 4, 5, 8, generator=g, dtype=torch.float64)  # (B, h, L, E)
    k = torch.randn(2, 1, 6, 8, generator=g, dtype=torch.float64)  # (B, 1, S, E)
    v = torch.randn(2, 1, 6, 3, generator=g, dtype=torch.float64)
    by_hand = torch.softmax(q @ k.transpose(-2, -1) / 8 ** 0.5, dim=-1) @ v  # (B, h, L, 3)
    torch.testing.assert_close(sdpa(q, k, v, fused=False), by_hand)
    torch.testing.assert_close(sdpa(q, k, v), by_hand)
    torch.testing.assert_close(sdpa(q[0, 0], k[0, 0], v[0, 0], fused=False), by_hand[0, 0])  # 2-D inputs


def test_reference_gradients_pass_gradcheck():
    q, k, v = (t.detach()[:1, :1].requires_grad_() for t in _qkv(SHAPES[1]))
    keep = _masks(SHAPES[1], torch.float64)["bool"]["attn_mask"][:1, :1]
    assert torch.autograd.gradcheck(lambda q, k, v: sdpa(q, k, v, attn_mask=keep, fused=False), (q, k, v))


def test_dropout_on_the_weights_as_documented():
    q, k, v = (t.detach() for t in _qkv(SHAPES[0]))
    torch.manual_seed(5)
    got = sdpa(q, k, v, dropout_p=0.4, fused=False)
    torch.manual_seed(5)
    weights = F.dropout(torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1), 0.4, training=True)
    torch.testing.assert_close(got, weights @ v)
    for fused in (False, True):
        assert not sdpa(q, k, v, dropout_p=1.0, fused=fused).any()  # every weight dropped
        torch.testing.assert_close(sdpa(q, k, v, dropout_p=0.0, fused=fused), sdpa(q, k, v, fused=not fused))


def test_devices_follow_the_data(dev):
    q, k, v = (t.detach().to(dev) for t in _qkv(SHAPES[0]))
    for kwargs in ({}, {"is_causal": True}, {"attn_mask": torch.ones(5, 5, dtype=torch.bool, device=dev)}):
        out = sdpa(q, k, v, fused=False, **kwargs)
        assert out.device.type == dev.type
        torch.testing.assert_close(out, sdpa(q, k, v, fused=True, **kwargs))


def _errors(fused):
    t = torch.randn
    q, k, v = t(2, 3, 4), t(2, 5, 4), t(2, 5, 6)

    def call(*args, **kwargs):
        return sdpa(*args, fused=fused, **kwargs)

    return [
        (lambda: call(t(4), k, v), r"query must be a tensor of at least 2 dims .*, got \(4,\)"),
        (lambda: call(q, k.double(), v), "share one floating dtype, got torch.float32, torch.float64"),
        (lambda: call(q.long(), k.long(), v.long()), "share one floating dtype"),
        (lambda: call(q, t(2, 5, 3), v), r"expected query \(\.\.\., L, E\), key \(\.\.\., S, E\).*got "
                                         r"\(2, 3, 4\), \(2, 5, 3\) and \(2, 5, 6\)"),
        (lambda: call(q, k, t(2, 4, 6)), r"value \(\.\.\., S, Ev\)"),
        (lambda: call(t(3, 3, 4), k, v), "batch dimensions of query, key and value must broadcast"),
        (lambda: call(q, k, v, attn_mask=torch.ones(3, 4, dtype=torch.bool)),
         r"attn_mask must broadcast to the scores' shape \(\.\.\., L, S\) = \(2, 3, 5\), got \(3, 4\)"),
        (lambda: call(q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.long)),
         "attn_mask must be bool or of the query's dtype torch.float32, got torch.int64"),
        (lambda: call(q, k, v, attn_mask=torch.ones(3, 5, dtype=torch.bool), is_causal=True), "not both"),
        (lambda: call(q, k, v, dropout_p=1.5), r"dropout_p must be a number in \[0, 1\]"),
    ]


@pytest.mark.parametrize("case", range(10))
@pytest.mark.parametrize("fused", [False, True])
def test_bad_inputs_raise_clear_errors(case, fused):
    make, match = _errors(fused)[case]
    with pytest.raises(ValueError, match=match):
        make()

"""Homework 5's checks, called directly on local functions: wrong answers fail with a message
naming the item, and an answer that calls a reference is blocked (and would otherwise be right).
That the source's answers pass under any grading seed is tested with every homework's in
test_grading_checks.py; the pipeline is in test_grading_hw5.py. The references themselves are
checked against torch's modules here."""
import math

import pytest
import torch

import seqmem
from test_grading_checks import assert_blocked_and_otherwise_right, assert_fails_with_a_message
from test_grading_checks import source  # noqa: F401 (the fixture: every homework's source answers)
from seqmem.grading import guard, hw5

CHECKS = {"positional_encoding": hw5.check_positional_encoding, "split_heads": hw5.check_split_heads,
          "merge_heads": hw5.check_merge_heads, "multi_head_attention": hw5.check_multi_head_attention,
          "masked_self_attention_block": hw5.check_masked_self_attention_block}


# ------------------------------------------------------------------------------ the references against torch

def _torch_mha(E, h, dtype, seed=0):
    torch.manual_seed(seed)
    mha = torch.nn.MultiheadAttention(E, h, batch_first=True, dtype=dtype)
    for p in mha.parameters():  # torch starts the biases at zero: make them count
        torch.nn.init.normal_(p, std=0.5)
    return mha, {name: p.detach() for name, p in mha.state_dict().items()}


@pytest.mark.parametrize("causal", [False, True])
def test_the_attention_reference_is_torchs_module_where_no_row_is_empty(causal):
    mha, params = _torch_mha(12, 3, torch.float64)
    q = torch.randn(2, 4, 12, dtype=torch.float64)
    kv = q if causal else torch.randn(2, 6, 12, dtype=torch.float64)
    padding = torch.zeros(2, kv.shape[1], dtype=torch.bool)
    padding[0, -2:] = True  # the last keys: every query keeps at least its first key
    mask = torch.ones(4, 4, dtype=torch.bool).triu(1) if causal else None
    expected, weights = mha(q, kv, kv, key_padding_mask=padding, attn_mask=mask, average_attn_weights=False)
    out, got = hw5.multi_head_attention_reference(q, kv, kv, params, 3, padding, causal)
    torch.testing.assert_close(out, expected.detach())
    torch.testing.assert_close(got, weights.detach())


@pytest.mark.parametrize("norm_first", [False, True])
def test_the_block_reference_is_torchs_decoder_layer_sublayer(norm_first):
    torch.manual_seed(3)
    layer = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first,
                                             dtype=torch.float64)
    for p in layer.norm1.parameters():
        torch.nn.init.normal_(p)
    params = {n: p.detach() for n, p in layer.state_dict().items() if n.startswith(("self_attn.", "norm1."))}
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[1, 3:] = True
    causal = torch.ones(5, 5, dtype=torch.bool).triu(1)
    with torch.no_grad():
        sa = layer._sa_block(layer.norm1(x) if norm_first else x, causal, padding)
        expected = x + sa if norm_first else layer.norm1(x + sa)
    torch.testing.assert_close(hw5.masked_self_attention_block_reference(x, params, 2, padding, norm_first), expected)


def test_the_encoding_reference_is_the_librarys():
    torch.testing.assert_close(hw5.positional_encoding_reference(torch.arange(50, dtype=torch.float64), 10),
                               seqmem.sinusoidal_encoding(50, 10, dtype=torch.float64))


def test_the_head_references_are_the_librarys_views():
    mha = seqmem.MultiheadAttention(12, 4, batch_first=True)
    x = torch.randn(2, 3, 12)
    torch.testing.assert_close(hw5.split_heads_reference(x, 4), mha._split(x))
    torch.testing.assert_close(hw5.merge_heads_reference(mha._split(x)), x)


# ------------------------------------------------------------------------------ wrong answers

def _then(item, change):
    return lambda s: lambda *args: change(s[item](*args), *args)


def _pe_interleaved_wrongly(positions, d_model):
    """All sines first, then all cosines (a common reading of the formula)."""
    t = positions.double()[:, None]
    rates = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    table = torch.cat([(t * rates).sin(), (t * rates).cos()], dim=1)[:, :d_model]
    return table.to(positions.dtype)


def _pe_exponent(exponent):
    def answer(positions, d_model):
        columns = torch.arange(d_model)
        angle = positions.double()[:, None] * 10000.0 ** (-exponent(columns).double() / d_model)
        return torch.where(columns % 2 == 0, angle.sin(), angle.cos()).to(positions.dtype)
    return answer


def _pe_in_float32(positions, d_model):
    columns = torch.arange(d_model)
    angle = positions.float()[:, None] * 10000.0 ** (-(2 * (columns // 2)).float() / d_model)
    return torch.where(columns % 2 == 0, angle.sin(), angle.cos()).to(positions.dtype)


def _split_by_view(x, num_heads):
    """A view without the transpose: (B, T, E) read as (B, h, T, d) in memory order."""
    B, T, E = x.shape
    return x.reshape(B, num_heads, T, E // num_heads)


def _split_strided(x, num_heads):
    """Head i takes every h-th column from i (the columns dealt out like cards)."""
    B, T, E = x.shape
    return x.reshape(B, T, E // num_heads, num_heads).permute(0, 3, 1, 2)


def _merge_by_view(heads):
    B, h, T, d = heads.shape
    return heads.reshape(B, T, h * d)


def _split(x, h):
    return x.unflatten(-1, (h, -1)).transpose(1, 2)


def _merge(heads):
    return heads.transpose(1, 2).flatten(2)


def _mha_scale(scale):
    def answer(query, key, value, params, num_heads, key_padding_mask, causal):
        E = query.shape[-1]
        q, k, v = (_split(t @ W.T + b, num_heads) for t, W, b in zip(
            (query, key, value), params["in_proj_weight"].chunk(3), params["in_proj_bias"].chunk(3)))
        scores = q @ k.transpose(-2, -1) * scale(E, num_heads)
        hidden = torch.zeros(scores.shape[-2:], dtype=torch.bool)
        if causal:
            hidden = torch.ones_like(hidden).triu(1)
        if key_padding_mask is not None:
            hidden = hidden | key_padding_mask[:, None, None, :]
        weights = torch.softmax(scores.masked_fill(hidden, -math.inf), -1).nan_to_num(0.0)
        out = _merge(weights @ v) @ params["out_proj.weight"].T + params["out_proj.bias"]
        return out, weights
    return answer


def _mha_with(change_mask=lambda m, causal: m, change_weights=lambda w: w):
    def answer(query, key, value, params, num_heads, key_padding_mask, causal):
        return _mha_scale(lambda E, h: 1 / math.sqrt(E // h))(query, key, value, params, num_heads,
                                                            change_mask(key_padding_mask, causal), causal)
    return answer


def _mha_padding_inverted(query, key, value, params, num_heads, key_padding_mask, causal):
    return _mha_with()(query, key, value, params, num_heads, None if key_padding_mask is None else ~key_padding_mask,
                       causal)


def _mha_causal_ignored(query, key, value, params, num_heads, key_padding_mask, causal):
    return _mha_with()(query, key, value, params, num_heads, key_padding_mask, False)


def _mha_nan_rows(query, key, value, params, num_heads, key_padding_mask, causal):
    """Leaves torch's NaN where a query may read nothing."""
    out, weights = _mha_with()(query, key, value, params, num_heads, key_padding_mask, causal)
    empty = weights.sum(-1, keepdim=True) == 0  # (B, h, T, 1)
    return torch.where(empty[:, 0], math.nan, out), torch.where(empty, math.nan, weights)


def _mha_weights_averaged(s):
    def answer(*args):
        out, weights = s["multi_head_attention"](*args)
        return out, weights.mean(1, keepdim=True).expand_as(weights)
    return answer


def _block(order, eps=1e-5):
    def answer(x, params, num_heads, key_padding_mask, norm_first):
        attention = {n[len("self_attn."):]: p for n, p in params.items() if n.startswith("self_attn.")}

        def norm(z):
            return torch.nn.functional.layer_norm(z, z.shape[-1:], params["norm1.weight"], params["norm1.bias"], eps)

        def sa(z, causal=True):
            return _mha_scale(lambda E, h: 1 / math.sqrt(E // h))(z, z, z, attention, num_heads, key_padding_mask,
                                                                  causal)[0]
        return order(x, norm, sa, norm_first)
    return answer


WRONG = {  # case -> (item, answer made from the source's answers, a phrase of the message)
    "pe: sines then cosines": ("positional_encoding", lambda s: _pe_interleaved_wrongly, "differs"),
    "pe: exponent i/d, not 2i/d": ("positional_encoding", lambda s: _pe_exponent(lambda c: c // 2), "differs"),
    "pe: exponent by the column": ("positional_encoding", lambda s: _pe_exponent(lambda c: c), "differs"),
    "pe: angles in float32": ("positional_encoding", lambda s: _pe_in_float32, "differs"),
    "pe: float64 always": ("positional_encoding", _then("positional_encoding", lambda out, *a: out.double()),
                           "dtype"),
    "pe: transposed": ("positional_encoding", _then("positional_encoding", lambda out, *a: out.T), "shape"),
    "pe: positions taken as 0..P-1": ("positional_encoding", lambda s: lambda positions, d: s["positional_encoding"](
        torch.arange(len(positions), dtype=positions.dtype), d), "differs"),
    "split: a view without the transpose": ("split_heads", lambda s: _split_by_view, "differs"),
    "split: columns dealt out": ("split_heads", lambda s: _split_strided, "differs"),
    "split: heads last": ("split_heads", _then("split_heads", lambda out, *a: out.permute(0, 2, 3, 1)), "shape"),
    "split: float always": ("split_heads", _then("split_heads", lambda out, *a: out.float()), "dtype"),
    "merge: a view without the transpose": ("merge_heads", lambda s: _merge_by_view, "differs"),
    "merge: heads in reverse": ("merge_heads", lambda s: lambda heads: s["merge_heads"](heads.flip(1)), "differs"),
    "mha: scaled by sqrt(E)": ("multi_head_attention", lambda s: _mha_scale(lambda E, h: 1 / math.sqrt(E)),
                               "differs"),
    "mha: no scale": ("multi_head_attention", lambda s: _mha_scale(lambda E, h: 1.0), "differs"),
    "mha: padding mask inverted": ("multi_head_attention", lambda s: _mha_padding_inverted, "differs"),
    "mha: causal ignored": ("multi_head_attention", lambda s: _mha_causal_ignored, "differs"),
    "mha: NaN where nothing is read": ("multi_head_attention", lambda s: _mha_nan_rows, "differs"),
    "mha: weights averaged over heads": ("multi_head_attention", _mha_weights_averaged, "weights"),
    "mha: no output projection": ("multi_head_attention", lambda s: lambda q, k, v, p, h, m, c: s[
        "multi_head_attention"](q, k, v, {**p, "out_proj.weight": torch.eye(q.shape[-1], dtype=q.dtype),
                                          "out_proj.bias": torch.zeros(q.shape[-1], dtype=q.dtype)}, h, m, c),
        "output"),
    "block: norms swapped": ("masked_self_attention_block", lambda s: _block(
        lambda x, norm, sa, first: norm(x + sa(x)) if first else x + sa(norm(x))), "differs"),
    "block: no residual": ("masked_self_attention_block", lambda s: _block(
        lambda x, norm, sa, first: sa(norm(x)) if first else norm(sa(x))), "differs"),
    "block: pre-norm normalises the sum too": ("masked_self_attention_block", lambda s: _block(
        lambda x, norm, sa, first: norm(x + sa(norm(x))) if first else norm(x + sa(x))), "differs"),
    "block: not causal": ("masked_self_attention_block", lambda s: _block(
        lambda x, norm, sa, first: x + sa(norm(x), False) if first else norm(x + sa(x, False))), "differs"),
    "block: eps 0.1": ("masked_self_attention_block", lambda s: _block(
        lambda x, norm, sa, first: x + sa(norm(x)) if first else norm(x + sa(x)), eps=1e-1), "differs"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(source, case):
    item, make, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], make(source), item, phrase)


def test_the_shared_answers_of_the_tests_above_are_right_where_they_should_be(source):
    """The helpers the wrong answers are built from are right themselves (so each case fails for its
    own reason)."""
    CHECKS["positional_encoding"](_pe_exponent(lambda c: 2 * (c // 2)))
    CHECKS["multi_head_attention"](_mha_scale(lambda E, h: 1 / math.sqrt(E // h)))
    CHECKS["masked_self_attention_block"](_block(lambda x, norm, sa, first: x + sa(norm(x)) if first
                                                 else norm(x + sa(x))))


# ------------------------------------------------------------------------------ blocked references

def _pe_by_library(positions, d_model):
    table = seqmem.sinusoidal_encoding(int(positions.max()) + 1, d_model, dtype=torch.float64)
    return table[positions.long()].to(positions.dtype)


def _pe_by_module(positions, d_model):
    module = seqmem.PositionalEncoding(d_model, max_len=int(positions.max()) + 1, dtype=torch.float64)
    return module.encoding[positions.long()].to(positions.dtype)


def _split_by_library(x, num_heads):
    return seqmem.MultiheadAttention(x.shape[-1], num_heads, batch_first=True)._split(x)


def _mha_by_torch(query, key, value, params, num_heads, key_padding_mask, causal):
    E = query.shape[-1]
    mha = torch.nn.MultiheadAttention(E, num_heads, batch_first=True, dtype=query.dtype)
    mha.load_state_dict(params)
    T, S = query.shape[1], key.shape[1]
    mask = torch.ones(T, S, dtype=torch.bool).triu(1) if causal else None
    kpm = key_padding_mask if key_padding_mask is not None else torch.zeros(query.shape[0], S, dtype=torch.bool)
    out, weights = mha(query, key, value, key_padding_mask=kpm, attn_mask=mask, average_attn_weights=False)
    empty = weights.isnan().all(-1)[:, 0, :, None]  # (B, T, 1): torch's NaN where a query reads nothing
    return torch.where(empty, params["out_proj.bias"], out).detach(), weights.detach().nan_to_num(0.0)


def _mha_by_sdpa(query, key, value, params, num_heads, key_padding_mask, causal):
    out, weights = _mha_scale(lambda E, h: 1 / math.sqrt(E // h))(query, key, value, params, num_heads,
                                                                 key_padding_mask, causal)
    torch.nn.functional.scaled_dot_product_attention(query[:, None], key[:, None], value[:, None])
    return out, weights


def _block_by_library_layer(x, params, num_heads, key_padding_mask, norm_first):
    E = x.shape[-1]
    layer = seqmem.TransformerDecoderLayer(E, num_heads, 4, dropout=0.0, batch_first=True, norm_first=norm_first,
                                           dtype=x.dtype)
    layer.load_state_dict({**layer.state_dict(), **params})
    T = x.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    y = layer.norm1(x) if norm_first else x
    sa = layer._sa_block(y, causal, key_padding_mask, False)
    return (x + sa if norm_first else layer.norm1(x + sa)).detach()


BLOCKED = {
    "seqmem.sinusoidal_encoding": ("positional_encoding", _pe_by_library),
    "seqmem.PositionalEncoding": ("positional_encoding", _pe_by_module),
    "seqmem.MultiheadAttention._split": ("split_heads", _split_by_library),
    "torch.nn.MultiheadAttention": ("multi_head_attention", _mha_by_torch),
    "torch's scaled_dot_product_attention": ("multi_head_attention", _mha_by_sdpa),
    "seqmem.TransformerDecoderLayer._sa_block": ("masked_self_attention_block", _block_by_library_layer),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)


def test_the_hidden_cases_cover_the_edges(monkeypatch):
    """Odd d_model, long tables, heads of size 1, T != S, causal masks, empty rows, both norms and a
    first position that is padding are among the cases the checks draw (watched through the
    references, with nothing blocked)."""
    monkeypatch.setattr(guard, "references", lambda item: [])
    seen = {"odd d": False, "long table": False, "unsorted positions": False, "heads of size 1": False, "T != S": False, "causal": False,
            "empty row": False, "pre-norm": False, "post-norm": False, "first position padded": False}

    def pe(positions, d_model):
        seen["odd d"] |= d_model % 2 == 1 and d_model > 1
        seen["long table"] |= len(positions) >= 300
        seen["unsorted positions"] |= bool((positions.diff() < 0).any())
        return hw5.positional_encoding_reference(positions, d_model)

    def split(x, h):
        seen["heads of size 1"] |= h > 1 and x.shape[-1] == h
        return hw5.split_heads_reference(x, h)

    def mha(q, k, v, params, h, padding, causal):
        seen["T != S"] |= q.shape[1] != k.shape[1]
        seen["causal"] |= causal and q.shape[1] > 1
        seen["empty row"] |= padding is not None and bool(padding.all(-1).any())
        return hw5.multi_head_attention_reference(q, k, v, params, h, padding, causal)

    def block(x, params, h, padding, norm_first):
        seen["pre-norm" if norm_first else "post-norm"] = True
        seen["first position padded"] |= padding is not None and bool(padding[:, 0].any()) and x.shape[1] > 1
        return hw5.masked_self_attention_block_reference(x, params, h, padding, norm_first)

    for check, fn in ((hw5.check_positional_encoding, pe), (hw5.check_split_heads, split),
                      (hw5.check_merge_heads, hw5.merge_heads_reference), (hw5.check_multi_head_attention, mha),
                      (hw5.check_masked_self_attention_block, block)):
        check(fn)
    assert all(seen.values()), seen

"""Homework 5's checks: the sinusoidal positional encoding, splitting into heads and merging back,
multi-head attention with a key padding mask and a causal mask, and a decoder layer's masked
self-attention block with add & norm (post-norm and pre-norm).

Each item is a sibling of what chapter 6 shows: the book builds multi-head attention as the
lecture's loop over heads without a mask, and calls the library for the positional encoding, for
masked attention and for the layers. As in the other homework modules: the student's function runs
through ``guard.call`` on fresh inputs drawn from ``guard.item_seed``; its result is validated,
then compared with the reference computed here in float64 and cast to the inputs' dtype.

Conventions the items share: batch first; the weights are given as a dict under the names of
torch's ``state_dict`` (``in_proj_weight`` stacks W^Q, W^K, W^V; head i is rows i*d:(i+1)*d of
each); a ``key_padding_mask`` is torch's: a bool tensor (B, S), True where a key is padding and
may not be read; a query that may read no key gets zero weights and a zero context (its output is
then the output projection's bias), never NaN; what is masked holds junk (large values).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .guard import call, close, fail, guard_tensor, guard_tuple, item_seed, register, torch_compilers

__all__ = ["check_positional_encoding", "check_split_heads", "check_merge_heads", "check_multi_head_attention",
           "check_masked_self_attention_block", "positional_encoding_reference", "split_heads_reference",
           "merge_heads_reference", "multi_head_attention_reference", "masked_self_attention_block_reference"]

LAYER_NORM_EPS = 1e-5  # torch's default, which the decoder layer uses


def _encoding_references() -> list:
    """The library's positional encodings."""
    from .. import transformer

    return [transformer.sinusoidal_encoding, (transformer.PositionalEncoding, "__init__"),
            (transformer.PositionalEncoding, "forward"), *torch_compilers()]


def _heads_references() -> list:
    """The library's multi-head attention, which splits and merges heads."""
    from .. import transformer

    mha = transformer.MultiheadAttention
    return [(mha, name) for name in ("forward", "_split", "_merge", "_project", "_attention")] + \
        [(torch.nn.functional, "multi_head_attention_forward"), (torch.nn.MultiheadAttention, "forward"),
         *torch_compilers()]


def _attention_references() -> list:
    """The library's and torch's attention and Transformer layers."""
    from .. import attention, transformer

    layers = [(cls, name) for cls in (transformer.TransformerEncoderLayer, transformer.TransformerDecoderLayer,
                                      transformer.TransformerEncoder, transformer.TransformerDecoder,
                                      transformer.Transformer, torch.nn.TransformerEncoderLayer,
                                      torch.nn.TransformerDecoderLayer, torch.nn.TransformerEncoder,
                                      torch.nn.TransformerDecoder, torch.nn.Transformer)
              for name in ("forward", "_sa_block", "_mha_block") if name in vars(cls)]
    return [attention.masked_softmax, attention.attend, attention.scaled_dot_product_attention,
            attention._sdpa_reference, *_heads_references(), *layers,
            (torch.nn.functional, "scaled_dot_product_attention"), "scaled_dot_product", "attention"]


register({"positional_encoding": _encoding_references, "split_heads": _heads_references, "merge_heads": _heads_references,
          "multi_head_attention": _attention_references, "masked_self_attention_block": _attention_references})


def _dtype(k: int) -> torch.dtype:
    return torch.float64 if k % 2 else torch.float32


# ------------------------------------------------------------------------------ 1. positional encoding

def positional_encoding_reference(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """(P, d_model): PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(t / 10000^(2i/d))."""
    table = torch.empty(len(positions), d_model, dtype=torch.float64)
    for column in range(d_model):
        rate = 10000.0 ** (-(column - column % 2) / d_model)
        angle = positions.double() * rate
        table[:, column] = torch.sin(angle) if column % 2 == 0 else torch.cos(angle)
    return table.to(positions.dtype)


def check_positional_encoding(fn: Callable, trials: int = 8, seed: int = 449) -> None:
    """Check ``fn(positions, d_model) -> (P, d_model)``, the sinusoids of the Transformer.

    positions (P,) float32 or float64, whole numbers in any order. Tried with P and d_model from 1,
    d_model odd (the last column is a sine), long tables (positions up to 300 in float64, 64 in
    float32), positions shuffled and repeated.
    """
    item = "positional_encoding"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        if k == 0:
            positions, d_model = torch.zeros(1, dtype=dtype), 1
        elif k == 1:
            positions, d_model = torch.arange(300, dtype=dtype), 16
        elif k == 2:
            positions, d_model = torch.arange(64, dtype=dtype), 7
        else:
            P = int(torch.randint(1, 40, (), generator=g))
            positions = torch.randint(0, 65, (P,), generator=g).to(dtype)
            d_model = int(torch.randint(1, 13, (), generator=g))
        out = call(item, fn, positions.clone(), d_model)
        guard_tensor(item, out, (len(positions), d_model), dtype)
        shown = positions.int().tolist() if len(positions) <= 12 else f"{len(positions)} positions"
        close(item, out, positional_encoding_reference(positions, d_model),
              what=f"table for positions={shown}, d_model={d_model} ({dtype})")


# ------------------------------------------------------------------------------ 2. heads

def split_heads_reference(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, E) -> (B, h, T, E / h): head i holds the columns i*d:(i+1)*d."""
    d = x.shape[-1] // num_heads
    return torch.stack([x[..., i * d:(i + 1) * d] for i in range(num_heads)], dim=1)


def merge_heads_reference(heads: torch.Tensor) -> torch.Tensor:
    """(B, h, T, d) -> (B, T, h * d): the heads side by side, head 0 first."""
    return torch.cat([heads[:, i] for i in range(heads.shape[1])], dim=-1)


def _head_sizes(g: torch.Generator, k: int) -> tuple:
    """(B, T, h, d) of trial k: ones first, then heads of size 1, then random sizes from 1."""
    if k == 0:
        return 1, 1, 1, 1
    if k == 1:
        return 2, 3, 4, 1
    return tuple(int(v) for v in torch.randint(1, 6, (4,), generator=g))


def check_split_heads(fn: Callable, trials: int = 8, seed: int = 457) -> None:
    """Check ``fn(x, num_heads) -> (B, h, T, E/h)``, head i the columns i*d:(i+1)*d of x (B, T, E).

    Tried with B, T, h, d from 1, h = 1 and h = E (heads of size 1), float32, float64 and int64.
    """
    item = "split_heads"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, T, h, d = _head_sizes(g, k)
        dtype = torch.int64 if k == 2 else _dtype(k)
        x = torch.randint(-100, 100, (B, T, h * d), generator=g).to(dtype)
        out = call(item, fn, x.clone(), h)
        guard_tensor(item, out, (B, h, T, d), dtype)
        close(item, out, split_heads_reference(x, h), what=f"split of x (B={B}, T={T}, E={h * d}) into {h} heads")


def check_merge_heads(fn: Callable, trials: int = 8, seed: int = 461) -> None:
    """Check ``fn(heads) -> (B, T, h*d)`` of heads (B, h, T, d), head 0's columns first.

    Tried with B, T, h, d from 1, heads of size 1, float32, float64 and int64, on heads that no
    split made (so an answer that remembers its last split gains nothing).
    """
    item = "merge_heads"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        B, T, h, d = _head_sizes(g, k)
        dtype = torch.int64 if k == 2 else _dtype(k)
        heads = torch.randint(-100, 100, (B, h, T, d), generator=g).to(dtype)
        out = call(item, fn, heads.clone())
        guard_tensor(item, out, (B, T, h * d), dtype)
        close(item, out, merge_heads_reference(heads), what=f"merge of {h} heads (B={B}, T={T}, d={d})")


# ------------------------------------------------------------------------------ 3. multi-head attention

def _draw_padding(g: torch.Generator, B: int, S: int, empty: bool) -> torch.Tensor:
    """A key padding mask (B, S), True at padding (about 30%); with ``empty``, row 0 all padding."""
    mask = torch.rand(B, S, generator=g) < 0.3
    if empty:
        mask[0] = True
    return mask


def _attention64(q, k, v, params: dict, num_heads: int, key_padding_mask, causal: bool, prefix: str = ""):
    """float64 multi-head attention by the lecture's loop over heads: (output (B, T, E), weights (B, h, T, S))."""
    W, b = params[prefix + "in_proj_weight"].double(), params[prefix + "in_proj_bias"].double()
    Wo, bo = params[prefix + "out_proj.weight"].double(), params[prefix + "out_proj.bias"].double()
    q, k, v = q.double(), k.double(), v.double()
    B, T, E = q.shape
    S, d = k.shape[1], E // num_heads
    allowed = torch.ones(B, T, S, dtype=torch.bool)
    if key_padding_mask is not None:
        allowed &= ~key_padding_mask[:, None, :]
    if causal:
        allowed &= torch.ones(T, S, dtype=torch.bool).tril()
    contexts, weights = [], []
    for i in range(num_heads):
        rows = slice(i * d, (i + 1) * d)
        qi = q @ W[:E][rows].T + b[:E][rows]
        ki = k @ W[E:2 * E][rows].T + b[E:2 * E][rows]
        vi = v @ W[2 * E:][rows].T + b[2 * E:][rows]
        scores = torch.where(allowed, qi @ ki.transpose(1, 2) / math.sqrt(d), -math.inf)
        alpha = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # a row with no key: zeros
        weights.append(alpha)
        contexts.append(alpha @ vi)
    return torch.cat(contexts, -1) @ Wo.T + bo, torch.stack(weights, 1)


def multi_head_attention_reference(query, key, value, params, num_heads, key_padding_mask, causal):
    out, weights = _attention64(query, key, value, params, num_heads, key_padding_mask, causal)
    return out.to(query.dtype), weights.to(query.dtype)


def _params(g: torch.Generator, E: int, dtype, prefix: str = "") -> dict:
    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)
    return {prefix + "in_proj_weight": randn(3 * E, E) / math.sqrt(E), prefix + "in_proj_bias": randn(3 * E),
            prefix + "out_proj.weight": randn(E, E) / math.sqrt(E), prefix + "out_proj.bias": randn(E)}


def check_multi_head_attention(fn: Callable, trials: int = 8, seed: int = 463) -> None:
    """Check ``fn(query, key, value, params, num_heads, key_padding_mask, causal) -> (output, weights)``.

    query (B, T, E), key and value (B, S, E), params torch's MultiheadAttention state_dict
    (in_proj_weight (3E, E), in_proj_bias (3E,), out_proj.weight (E, E), out_proj.bias (E,)),
    key_padding_mask (B, S) bool (True: padding) or None, causal a bool (query t reads keys s <= t;
    then T = S). Returns output (B, T, E) and the weights of every head (B, h, T, S). Tried in
    float32 and float64, one head and heads of size 1, T != S, junk in padded keys and values, a
    batch row that is all padding (its weights 0, its output the output bias).
    """
    item = "multi_head_attention"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, T, S, h, d = (1, 1, 1, 1, 1) if k == 0 else tuple(int(v) for v in torch.randint(1, 5, (5,), generator=g))
        if k == 1:
            B, T, S, h, d = 2, 3, 5, 2, 9  # the scale is 1/3: sqrt(d), not sqrt(E) = sqrt(18)
        causal = k in (3, 4, 6)
        S = T if causal else S
        E = h * d

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        query, key, value = randn(B, T, E), randn(B, S, E), randn(B, S, E)
        padding = None if k in (0, 3) else _draw_padding(g, B, S, empty=k in (2, 6))
        if padding is not None:
            key[padding] = 1e3 * randn(int(padding.sum()), E)
            value[padding] = 1e3 * randn(int(padding.sum()), E)
        params = _params(g, E, dtype)
        out = call(item, fn, query.clone(), key.clone(), value.clone(), {n: p.clone() for n, p in params.items()},
                   h, None if padding is None else padding.clone(), causal)
        output, weights = multi_head_attention_reference(query, key, value, params, h, padding, causal)
        got = guard_tuple(item, out, ((B, T, E), (B, h, T, S)), dtype, ("output", "weights"))
        what = (f"for B={B}, T={T}, S={S}, num_heads={h}, E={E}, causal={causal}, "
                f"key_padding_mask={'None' if padding is None else padding.int().tolist()} ({dtype})")
        close(item, got[1], weights, what=f"weights {what}")
        close(item, got[0], output, what=f"output {what}")


# ------------------------------------------------------------------------------ 4. the masked self-attention block

def masked_self_attention_block_reference(x, params, num_heads, key_padding_mask, norm_first) -> torch.Tensor:
    """(B, T, E): LayerNorm(x + SA(x)) (post-norm) or x + SA(LayerNorm(x)) (pre-norm), SA causal."""
    x64 = x.double()
    E = x.shape[-1]

    def norm(t):
        return torch.nn.functional.layer_norm(t, (E,), params["norm1.weight"].double(), params["norm1.bias"].double(),
                                              LAYER_NORM_EPS)
    inner = norm(x64) if norm_first else x64
    attended, _ = _attention64(inner, inner, inner, params, num_heads, key_padding_mask, True, prefix="self_attn.")
    return (x64 + attended if norm_first else norm(x64 + attended)).to(x.dtype)


def check_masked_self_attention_block(fn: Callable, trials: int = 8, seed: int = 467) -> None:
    """Check ``fn(x, params, num_heads, key_padding_mask, norm_first) -> (B, T, E)``.

    x (B, T, E) the target's embeddings, params torch's TransformerDecoderLayer state_dict entries
    of the block (self_attn.in_proj_weight, self_attn.in_proj_bias, self_attn.out_proj.weight,
    self_attn.out_proj.bias, norm1.weight, norm1.bias), key_padding_mask (B, T) bool (True:
    padding) or None, norm_first a bool. Tried with both norms in float32 and float64, padding at
    the end and at the start (a first position with nothing to read), junk in padded positions.
    """
    item = "masked_self_attention_block"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype, norm_first = _dtype(k), k in (1, 2, 5, 6)
        B, T, h, d = (1, 1, 1, 1) if k == 0 else tuple(int(v) for v in torch.randint(1, 5, (4,), generator=g))
        if k == 1:
            B, T, h, d = 2, 4, 2, 9
        E = max(h * d, 4)  # E >= 4: over two nearly equal numbers a LayerNorm amplifies float32's rounding
        h = h if E % h == 0 else 1

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        x = randn(B, T, E)
        padding = None if k in (0, 1) else _draw_padding(g, B, T, empty=False)
        if k in (3, 6):
            padding[0, 0] = True  # the first position is padding: under the causal mask it reads nothing
        params = _params(g, E, dtype, prefix="self_attn.")
        params.update({"norm1.weight": 1 + 0.5 * randn(E), "norm1.bias": 0.5 * randn(E)})
        if padding is not None:
            x[padding] = 10 * randn(int(padding.sum()), E)
        out = call(item, fn, x.clone(), {n: p.clone() for n, p in params.items()}, h,
                   None if padding is None else padding.clone(), norm_first)
        expected = masked_self_attention_block_reference(x, params, h, padding, norm_first)
        guard_tensor(item, out, (B, T, E), dtype)
        close(item, out, expected, what=f"block's output for B={B}, T={T}, E={E}, num_heads={h}, norm_first="
                                        f"{norm_first}, key_padding_mask="
                                        f"{'None' if padding is None else padding.int().tolist()} ({dtype})")


# the reference answers' helpers, blocked with the *_reference functions while a student's code runs
GRADER_HELPERS = [_attention64]

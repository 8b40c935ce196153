r"""The Transformer: a sequence-to-sequence model built entirely on attention (Vaswani et al., 2017).

The lecture's building blocks, in the paper's order:

**Multi-head attention** (section 3.2.2). h heads attend in h subspaces of size d_k = d_model / h,
each with its own projections, and the concatenated heads are projected back:

.. math::

    \mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V), \qquad
    \mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O

with Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, eq. (1). ``MultiheadAttention`` is the
drop-in for ``torch.nn.MultiheadAttention``: its arguments, parameter names, ``state_dict`` keys,
masks and outputs. The h projections W_i^Q are the row blocks of one matrix (E, E) (torch's
``in_proj_weight`` stacks W^Q, W^K, W^V), so all heads are computed by one matmul and a reshape.

**Positional encoding** (section 3.5): ``sinusoidal_encoding`` and ``PositionalEncoding`` (fixed
sinusoids, or learned). **The position-wise feed-forward network** (section 3.3):
``feed_forward``, FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, and ``PositionwiseFeedForward``.
**The encoder and decoder stacks** (section 3.1), each sublayer wrapped in Add & Norm,
LayerNorm(x + Sublayer(x)): ``TransformerEncoderLayer`` (self-attention, FFN),
``TransformerDecoderLayer`` (masked self-attention, attention over the encoder's memory, FFN),
``TransformerEncoder`` and ``TransformerDecoder`` (N layers), ``Transformer`` (both stacks). Each
is the drop-in for torch's module of the same name: arguments, ``state_dict`` keys and outputs.
**The learning-rate schedule** (section 5.3): ``noam_schedule``, warm-up then 1 / sqrt(step).

Dimensions: B batch, L queries (target positions), S keys (source positions), E = d_model the
embedding size, h heads, d = E / h the size of a head, kdim and vdim the keys' and values' sizes; in the layers D = d_model,
S source and T target positions, F = dim_feedforward.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .attention import masked_softmax, scaled_dot_product_attention
from .cell import check_like
from .core import check_positive_int

__all__ = ["MultiheadAttention", "is_causal_mask", "sinusoidal_encoding", "PositionalEncoding", "feed_forward",
           "PositionwiseFeedForward", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerDecoder", "Transformer", "noam_lambda", "noam_schedule"]


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def _check_dropout(p) -> None:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout must be a number in [0, 1], got {p!r}")


# -- the masks ------------------------------------------------------------------------------------
#
# torch's module masks in the opposite sense to torch's function: a bool True in ``attn_mask`` or
# ``key_padding_mask`` means "do not attend" (the function's True means "attend"); a float mask is
# added to the scores in both. The two masks of a call merge into one in the function's sense.


def _check_mask(name: str, mask, shapes: list[tuple], like: torch.Tensor) -> None:
    """A ``ValueError`` unless ``mask`` is bool or of the query's dtype, of one of ``shapes``, on its device."""
    if not isinstance(mask, torch.Tensor) or mask.dtype not in (torch.bool, like.dtype):
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor or of the query's dtype {like.dtype}, got {got}")
    if tuple(mask.shape) not in shapes:
        raise ValueError(f"{name} must have shape {' or '.join(map(str, shapes))}, got {_shape(mask)}")
    if mask.device != like.device:
        raise ValueError(f"{name} is on {mask.device} but the query is on {like.device}")


def _append_key(mask: torch.Tensor | None) -> torch.Tensor | None:
    """A mask over S keys (module sense) widened to S + 1, the new last key allowed: for bias_k and the zero key."""
    if mask is None:
        return None
    return torch.cat([mask, mask.new_zeros(*mask.shape[:-1], 1)], dim=-1)  # False, or 0.0: not masked


def _merge_masks(attn_mask: torch.Tensor | None, key_padding_mask: torch.Tensor | None):
    """One mask in the function's sense from the module's two, broadcastable to (B, h, L, S).

    Args: attn_mask (1, 1, L, S) or (B, h, L, S); key_padding_mask (B, 1, 1, S); module sense.
    Returns None, a bool mask (True: attend) when both are bool, else an additive float mask.
    """
    masks = [m for m in (attn_mask, key_padding_mask) if m is not None]
    if not masks:
        return None
    if all(m.dtype == torch.bool for m in masks):
        blocked = masks[0] if len(masks) == 1 else masks[0] | masks[1]  # (B or 1, h or 1, L or 1, S)
        return ~blocked
    dtype = next(m.dtype for m in masks if m.dtype != torch.bool)
    additive = [torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(m, float("-inf"))
                if m.dtype == torch.bool else m for m in masks]  # bool True becomes -inf, as torch does
    return additive[0] if len(additive) == 1 else additive[0] + additive[1]


def is_causal_mask(mask: torch.Tensor) -> bool:
    """True if ``mask`` (..., L, S), bool or float in the module's sense, blocks exactly the keys j > i.

    That is the mask ``Transformer.generate_square_subsequent_mask`` makes (0 on and below the
    diagonal, -inf above), or its bool form (True above the diagonal), aligned at the top left.
    """
    L, S = mask.shape[-2:]
    above = torch.ones(L, S, dtype=torch.bool, device=mask.device).triu(1)  # (L, S): j > i
    if mask.dtype == torch.bool:
        return bool((mask == above).all())
    return bool((torch.isneginf(mask) == above).all() and (mask.masked_fill(above, 0.0) == 0).all())


# -- multi-head attention -------------------------------------------------------------------------


class MultiheadAttention(nn.Module):
    r"""Multi-head attention, the drop-in for ``torch.nn.MultiheadAttention``.

    Args (torch's):
        embed_dim: E = d_model, the size of the queries and of the output; a multiple of num_heads.
        num_heads: h; each head attends with queries and keys of d = E / h features.
        dropout: dropout on the attention weights, in training mode.
        bias: biases in the input projections (``in_proj_bias``) and the output projection.
        add_bias_kv: a learned key ``bias_k`` and value ``bias_v`` (1, 1, E) appended to every
            sequence of keys and values (S becomes S + 1).
        add_zero_attn: a key and a value of zeros appended after the projections (S + 1 again).
        kdim, vdim: the keys' and the values' sizes (E by default).
        batch_first: inputs and outputs (B, L, E) rather than torch's default (L, B, E).
        fused: where no weights are asked for (``need_weights=False``), run the heads through
            ``seqmem.attention.scaled_dot_product_attention``'s fused kernel (the default);
            ``False`` always runs the from-scratch path below. The two are tested equal.

    Parameters, with torch's names: ``in_proj_weight`` (3E, E), the row blocks W^Q, W^K, W^V,
    when kdim = vdim = E; else ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim) and
    ``v_proj_weight`` (E, vdim). ``in_proj_bias`` (3E,) with ``bias``; ``out_proj`` the Linear
    W^O (E, E); ``bias_k`` and ``bias_v`` (1, 1, E) with ``add_bias_kv``.

    Shape (``forward``):
        query (L, B, E), key (S, B, kdim), value (S, B, vdim), or batch first (B, L, E), ...; or
        unbatched (L, E), (S, kdim), (S, vdim). ``key_padding_mask`` (B, S) (unbatched (S,)):
        True (or -inf) at the keys to ignore. ``attn_mask`` (L, S), or (B * h, L, S) one per
        sample and head (unbatched (h, L, S)): True (or -inf) where query i must not see key j,
        or a float mask added to the scores. ``is_causal``: a hint that ``attn_mask`` is the
        causal mask, which it must then be (torch asks for the mask too; here a wrong hint is an
        error rather than a wrong answer).

        Returns ``(output, weights)``: output as the query, (L, B, E) (or (B, L, E), or (L, E));
        the weights (B, L, S), averaged over the heads, or (B, h, L, S) with
        ``average_attn_weights=False`` (unbatched (L, S) or (h, L, S)); ``None`` with
        ``need_weights=False``. The weights are those the values were summed with: after dropout.

    A query whose keys are all masked reads nothing: zero weights, and the output projection of
    zero (its bias), as in the rest of the library and as torch's own fast path; torch's weights
    path gives NaN there.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None, fused: bool = True):
        super().__init__()
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be a multiple of num_heads, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads}")
        _check_dropout(dropout)
        kdim, vdim = embed_dim if kdim is None else kdim, embed_dim if vdim is None else vdim
        check_positive_int("kdim", kdim)
        check_positive_int("vdim", vdim)
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim, self.dropout, self.batch_first = kdim, vdim, dropout, batch_first
        self.add_zero_attn, self.fused = add_zero_attn, fused
        self._qkv_same_embed_dim = kdim == embed_dim and vdim == embed_dim  # torch's name: one packed matrix
        E, factory = embed_dim, dict(device=device, dtype=dtype)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * E, E, **factory))  # [W^Q; W^K; W^V]
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(E, E, **factory))  # W^Q, all heads: (E, E)
            self.k_proj_weight = nn.Parameter(torch.empty(E, kdim, **factory))  # W^K: (E, kdim)
            self.v_proj_weight = nn.Parameter(torch.empty(E, vdim, **factory))  # W^V: (E, vdim)
            self.register_parameter("in_proj_weight", None)
        self.in_proj_bias = nn.Parameter(torch.empty(3 * E, **factory)) if bias else None
        self.out_proj = nn.Linear(E, E, bias=bias, **factory)  # W^O
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, E, **factory))
            self.bias_v = nn.Parameter(torch.empty(1, 1, E, **factory))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's initialisation: Xavier-uniform projections, zero biases, Xavier-normal bias_k and bias_v."""
        for w in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if w is not None:
                nn.init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)
        for b in (self.bias_k, self.bias_v):
            if b is not None:
                nn.init.xavier_normal_(b)

    # -- forward ------------------------------------------------------------------------------------

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                key_padding_mask: torch.Tensor | None = None, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, average_attn_weights: bool = True, is_causal: bool = False):
        batched = self._check_inputs(query, key, value)
        q, k, v = (self._batch_first(t, batched) for t in (query, key, value))  # (B, L, E), (B, S, ·)
        B, L, S = q.shape[0], q.shape[1], k.shape[1]
        attn_mask, key_padding_mask = self._check_masks(attn_mask, key_padding_mask, is_causal, q, B, L, S, batched)
        q, k, v = self._project(q, k, v)  # Q W^Q, K W^K, V W^V for all heads: (B, L, E), (B, S, E), (B, S, E)
        if self.bias_k is not None:  # a learned key and value that every query may read
            k, v = torch.cat([k, self.bias_k.expand(B, 1, -1)], 1), torch.cat([v, self.bias_v.expand(B, 1, -1)], 1)
            attn_mask, key_padding_mask = _append_key(attn_mask), _append_key(key_padding_mask)
        if self.add_zero_attn:  # a zero key and value: a query may attend to "nothing"
            k, v = torch.cat([k, k.new_zeros(B, 1, k.shape[2])], 1), torch.cat([v, v.new_zeros(B, 1, v.shape[2])], 1)
            attn_mask, key_padding_mask = _append_key(attn_mask), _append_key(key_padding_mask)
        q, k, v = self._split(q), self._split(k), self._split(v)  # (B, h, L, d), (B, h, S', d), (B, h, S', d)
        mask = _merge_masks(attn_mask, key_padding_mask)  # function sense, broadcastable to (B, h, L, S')
        p = self.dropout if self.training else 0.0
        if need_weights or not self.fused:
            heads, weights = self._attention(q, k, v, mask, p)  # (B, h, L, d), (B, h, L, S')
        else:
            causal = is_causal and key_padding_mask is None and self.bias_k is None and not self.add_zero_attn
            heads = scaled_dot_product_attention(q, k, v, attn_mask=None if causal else mask, dropout_p=p,
                                                 is_causal=causal, fused=True)  # (B, h, L, d)
            weights = None
        out = self.out_proj(self._merge(heads))  # Concat(head_1, ..., head_h) W^O: (B, L, E)
        out = out if batched and self.batch_first else out.transpose(0, 1) if batched else out.squeeze(0)
        if not need_weights:
            return out, None
        weights = weights.mean(dim=1) if average_attn_weights else weights  # (B, L, S') or (B, h, L, S')
        return out, weights if batched else weights.squeeze(0)

    def _project(self, q, k, v):
        """The input projections of all heads at once: (B, L, E), (B, S, kdim), (B, S, vdim) -> (B, ·, E)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.split(E)  # the row blocks W^Q, W^K, W^V: (E, E) each
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q, b_k, b_v = (None,) * 3 if self.in_proj_bias is None else self.in_proj_bias.split(E)
        return (nn.functional.linear(q, w_q, b_q), nn.functional.linear(k, w_k, b_k),
                nn.functional.linear(v, w_v, b_v))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, E) -> (B, h, T, d): head i reads features i*d ... (i+1)*d - 1, its W_i's rows."""
        B, T, _ = x.shape
        return x.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, h, T, d)

    def _merge(self, heads: torch.Tensor) -> torch.Tensor:
        """(B, h, L, d) -> (B, L, E): Concat(head_1, ..., head_h)."""
        B, _, L, _ = heads.shape
        return heads.transpose(1, 2).reshape(B, L, self.embed_dim)  # (B, L, E)

    def _attention(self, q, k, v, mask, p: float):
        """The from-scratch path, eq. (1) for every head at once; returns the heads and their weights."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, h, L, d) @ (B, h, d, S): (B, h, L, S)
        if mask is not None and mask.dtype != torch.bool:
            scores, mask = scores + mask, None  # an additive mask: -inf drops a key
        weights = masked_softmax(scores, mask)  # (B, h, L, S); a query with no key left: zeros
        if p > 0.0:
            weights = nn.functional.dropout(weights, p, training=True)
        return weights @ v, weights  # (B, h, L, S) @ (B, h, S, d): (B, h, L, d)

    # -- the checks --------------------------------------------------------------------------------

    def _layout(self, batched: bool, T: str, F: str) -> str:
        return f"({T}, {F})" if not batched else f"(B, {T}, {F})" if self.batch_first else f"({T}, B, {F})"

    def _batch_first(self, t: torch.Tensor, batched: bool) -> torch.Tensor:
        return t.unsqueeze(0) if not batched else t if self.batch_first else t.transpose(0, 1)

    def _check_inputs(self, query, key, value) -> bool:
        """ValueErrors naming the expected layouts; returns whether the inputs are batched."""
        if not isinstance(query, torch.Tensor) or query.dim() not in (2, 3):
            raise ValueError(f"query must be batched {self._layout(True, 'L', 'E')} or unbatched (L, E) with "
                             f"E = {self.embed_dim}, got {_shape(query)}")
        batched = query.dim() == 3
        for name, t, T, F, size in (("query", query, "L", "E", self.embed_dim), ("key", key, "S", "kdim", self.kdim),
                                    ("value", value, "S", "vdim", self.vdim)):
            if not isinstance(t, torch.Tensor) or t.dim() != query.dim() or t.shape[-1] != size:
                raise ValueError(f"{name} must have shape {self._layout(batched, T, F)} with {F} = {size} "
                                 f"(as the query is {'batched' if batched else 'unbatched'}), got {_shape(t)}")
        q, k, v = (self._batch_first(t, batched) for t in (query, key, value))
        if k.shape[:2] != v.shape[:2] or q.shape[0] != k.shape[0]:
            raise ValueError(f"query, key and value must share the batch size and key and value the length S, got "
                             f"query {_shape(query)}, key {_shape(key)} and value {_shape(value)} "
                             f"(layout {self._layout(batched, 'T', '·')})")
        check_like(next(self.parameters()), query=query, key=key, value=value)
        return batched

    def _check_masks(self, attn_mask, key_padding_mask, is_causal: bool, q, B: int, L: int, S: int, batched: bool):
        """Both masks checked and shaped to (1, 1, L, S) or (B, h, L, S), and (B, 1, 1, S)."""
        h = self.num_heads
        if key_padding_mask is not None:
            _check_mask("key_padding_mask", key_padding_mask, [(B, S)] if batched else [(S,)], q)
            key_padding_mask = key_padding_mask.view(B, 1, 1, S)
        if is_causal and attn_mask is None:
            raise ValueError("is_causal=True is a hint that attn_mask is the causal mask: pass the mask too "
                             "(Transformer.generate_square_subsequent_mask(L) makes it), as torch asks")
        if attn_mask is not None:
            _check_mask("attn_mask", attn_mask, [(L, S), (B * h, L, S) if batched else (h, L, S)], q)
            if is_causal and not is_causal_mask(attn_mask):
                raise ValueError("is_causal=True but attn_mask is not the causal mask (True or -inf exactly "
                                 "above the diagonal): pass is_causal=False to apply this mask")
            attn_mask = attn_mask.view(1, 1, L, S) if attn_mask.dim() == 2 else attn_mask.view(B, h, L, S)
        return attn_mask, key_padding_mask

    def extra_repr(self) -> str:
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, kdim={self.kdim}, vdim={self.vdim}, "
                f"batch_first={self.batch_first}")


# -- positions ------------------------------------------------------------------------------------


def sinusoidal_encoding(length: int, d_model: int, device=None, dtype=None) -> torch.Tensor:
    r"""The paper's positional encodings (section 3.5), (length, d_model):

    .. math::

        PE_{(pos, 2i)} = \sin(pos / 10000^{2i / d_{model}}), \qquad
        PE_{(pos, 2i+1)} = \cos(pos / 10000^{2i / d_{model}})

    Each pair of features is a sinusoid of its own wavelength, from 2 pi to 10000 * 2 pi; for any
    offset k, PE_{pos+k} is a linear function (a rotation of each pair) of PE_{pos}. Computed in
    float64, then cast to ``dtype``.
    """
    check_positive_int("length", length)
    check_positive_int("d_model", d_model)
    pos = torch.arange(length, dtype=torch.float64, device=device).unsqueeze(1)  # (T, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)  # 2i: (ceil(D / 2),)
    angle = pos / 10000.0 ** (two_i / d_model)  # (T, ceil(D / 2))
    pe = torch.empty(length, d_model, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(angle)  # the even features
    pe[:, 1::2] = torch.cos(angle[:, :d_model // 2])  # the odd ones (one fewer when D is odd)
    return pe.to(torch.get_default_dtype() if dtype is None else dtype)


class PositionalEncoding(nn.Module):
    """Adds to each position's embedding a vector that says where it is: x_t + PE_t, then dropout.

    Attention alone is blind to order (permuting the keys permutes nothing in the output); the
    encoding gives it. ``learned=False`` (the default) adds the paper's fixed sinusoids
    (``sinusoidal_encoding``, a buffer outside the ``state_dict``); ``learned=True`` a learned
    table ``weight`` (max_len, d_model) drawn from N(0, 0.02^2), which the paper found "nearly
    identical" in results but which cannot go past max_len. The paper also multiplies the token
    embeddings by sqrt(d_model) before this sum; that is the embedding's business, not done here.

    Shape: x (B, T, d_model), batch first, T <= max_len; returns the same shape.
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0, learned: bool = False,
                 device=None, dtype=None):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("max_len", max_len)
        _check_dropout(dropout)
        self.d_model, self.max_len, self.learned = d_model, max_len, learned
        self.dropout = nn.Dropout(dropout)
        if learned:
            self.weight = nn.Parameter(torch.empty(max_len, d_model, device=device, dtype=dtype))  # (max_len, D)
            nn.init.normal_(self.weight, std=0.02)
        else:
            self.register_buffer("pe", sinusoidal_encoding(max_len, d_model, device, dtype), persistent=False)

    @property
    def encoding(self) -> torch.Tensor:
        """The table added, (max_len, d_model)."""
        return self.weight if self.learned else self.pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.d_model or x.shape[1] > self.max_len:
            raise ValueError(f"x must have shape (B, T, d_model) with d_model = {self.d_model} and T <= max_len = "
                             f"{self.max_len}, got {_shape(x)}")
        check_like(self.encoding, x=x)
        return self.dropout(x + self.encoding[:x.shape[1]])  # (B, T, D) + (T, D): the same PE for every sample

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, learned={self.learned}"


# -- the position-wise feed-forward network ---------------------------------------------------------


def _activation(activation):
    """torch's choices: "relu", "gelu" or a callable."""
    if callable(activation):
        return activation
    if activation == "relu":
        return nn.functional.relu
    if activation == "gelu":
        return nn.functional.gelu
    raise ValueError(f"activation must be 'relu', 'gelu' or a callable, got {activation!r}")


def feed_forward(x: torch.Tensor, linear1: nn.Linear, linear2: nn.Linear, activation=nn.functional.relu,
                 dropout: nn.Module | None = None) -> torch.Tensor:
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, eq. (2): the same two layers at every position.

    Two convolutions of kernel size 1, in the paper's words; ``activation`` in place of the max
    (GELU is the later choice) and ``dropout`` on the hidden layer, as torch's layers have it.
    x (..., d_model) -> (..., d_model) through (..., dim_feedforward).
    """
    hidden = activation(linear1(x))  # (..., F)
    return linear2(hidden if dropout is None else dropout(hidden))  # (..., D)


class PositionwiseFeedForward(nn.Module):
    """``feed_forward`` as a module: ``linear1`` (F, D), ``dropout``, ``linear2`` (D, F).

    The Transformer layers hold the same three under the same names themselves (torch's
    ``state_dict`` keys) and call ``feed_forward`` on them.
    """

    def __init__(self, d_model: int, dim_feedforward: int = 2048, dropout: float = 0.0, activation="relu",
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("dim_feedforward", dim_feedforward)
        _check_dropout(dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)  # W_1
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)  # W_2
        self.activation = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.linear1.in_features:
            raise ValueError(f"x must have shape (..., d_model) with d_model = {self.linear1.in_features}, "
                             f"got {_shape(x)}")
        return feed_forward(x, self.linear1, self.linear2, self.activation, self.dropout)


# -- the layers -----------------------------------------------------------------------------------


def _check_sequence(name: str, x, d_model: int, batch_first: bool, T: str) -> bool:
    """x must be (T, B, D), (B, T, D) batch first, or unbatched (T, D); returns whether batched."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (2, 3) or x.shape[-1] != d_model:
        layout = f"(B, {T}, d_model)" if batch_first else f"({T}, B, d_model)"
        raise ValueError(f"{name} must have shape {layout} or unbatched ({T}, d_model) with d_model = {d_model}, "
                         f"got {_shape(x)}")
    return x.dim() == 3


def _check_memory(tgt: torch.Tensor, memory, d_model: int, batch_first: bool) -> None:
    _check_sequence("memory", memory, d_model, batch_first, "S")
    batch = 0 if batch_first else 1
    if memory.dim() != tgt.dim() or (tgt.dim() == 3 and memory.shape[batch] != tgt.shape[batch]):
        raise ValueError(f"memory and tgt must both be batched with one batch size, or both unbatched, got tgt "
                         f"{_shape(tgt)} and memory {_shape(memory)} (batch_first={batch_first})")


class TransformerEncoderLayer(nn.Module):
    r"""One encoder layer: self-attention, then the feed-forward network, each with Add & Norm.

    The paper's post-norm (``norm_first=False``): x = LayerNorm(x + Sublayer(x)) for each of the
    two sublayers. ``norm_first=True`` is the pre-norm of later work, x = x + Sublayer(LayerNorm(x)),
    whose residual path is the identity, easier to train deep. Dropout on each sublayer's output
    before the sum (P_drop, section 5.4) and on the attention weights and the FFN's hidden layer.

    The drop-in for ``torch.nn.TransformerEncoderLayer``: its arguments, submodules and
    ``state_dict`` keys (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``).

    Shape: src (S, B, D), batch first (B, S, D), or unbatched (S, D); ``src_mask`` and
    ``src_key_padding_mask`` as ``MultiheadAttention``'s ``attn_mask`` and ``key_padding_mask``
    (True or -inf: not attended); ``is_causal`` the hint that ``src_mask`` is causal. Returns src's shape.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            **factory)
        ffn = PositionwiseFeedForward(d_model, dim_feedforward, dropout, activation, bias, **factory)
        self.linear1, self.dropout, self.linear2 = ffn.linear1, ffn.dropout, ffn.linear2  # torch's names
        self.norm_first, self.batch_first = norm_first, batch_first
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.activation = ffn.activation

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        _check_sequence("src", src, self.self_attn.embed_dim, self.batch_first, "S")
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))  # LayerNorm(x + Sublayer(x))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        y, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                              is_causal=is_causal)  # every position attends to every (allowed) position
        return self.dropout1(y)

    def _ff_block(self, x):
        return self.dropout2(feed_forward(x, self.linear1, self.linear2, self.activation, self.dropout))


class TransformerDecoderLayer(nn.Module):
    r"""One decoder layer: masked self-attention, attention over the encoder's memory, the FFN.

    Each of the three sublayers with Add & Norm as in ``TransformerEncoderLayer`` (post-norm by
    default, ``norm_first=True`` pre-norm). The self-attention takes ``tgt_mask``, the causal
    mask in training, so that position t sees the targets up to t only; the second attention
    reads the memory: queries from the decoder, keys and values the encoder's outputs.

    The drop-in for ``torch.nn.TransformerDecoderLayer``: ``self_attn``, ``multihead_attn``,
    ``linear1``, ``linear2``, ``norm1``, ``norm2``, ``norm3``.

    Shape: tgt (T, B, D), memory (S, B, D) (batch first (B, T, D), (B, S, D); unbatched (T, D),
    (S, D)); ``tgt_mask`` (T, T) or (B * h, T, T), ``memory_mask`` (T, S) or (B * h, T, S),
    ``tgt_key_padding_mask`` (B, T), ``memory_key_padding_mask`` (B, S). Returns tgt's shape.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        attention = dict(dropout=dropout, bias=bias, batch_first=batch_first, **factory)
        self.self_attn = MultiheadAttention(d_model, nhead, **attention)
        self.multihead_attn = MultiheadAttention(d_model, nhead, **attention)
        ffn = PositionwiseFeedForward(d_model, dim_feedforward, dropout, activation, bias, **factory)
        self.linear1, self.dropout, self.linear2 = ffn.linear1, ffn.dropout, ffn.linear2  # torch's names
        self.norm_first, self.batch_first = norm_first, batch_first
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory)
                                              for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.activation = ffn.activation

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> torch.Tensor:
        D = self.self_attn.embed_dim
        _check_sequence("tgt", tgt, D, self.batch_first, "T")
        _check_memory(tgt, memory, D, self.batch_first)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
        return self.norm3(x + self._ff_block(x))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        y, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                              is_causal=is_causal)  # MultiHead(X_d, X_d, X_d), masked
        return self.dropout1(y)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        y, _ = self.multihead_attn(x, memory, memory, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                   need_weights=False, is_causal=is_causal)  # MultiHead(X_e, X_e, X_d)
        return self.dropout2(y)

    def _ff_block(self, x):
        return self.dropout3(feed_forward(x, self.linear1, self.linear2, self.activation, self.dropout))


# -- the stacks and the whole model ---------------------------------------------------------------


def _causal_hint(mask, is_causal: bool | None) -> bool:
    """torch's stacks' rule: ``None`` means "is the mask the causal mask?", a bool is kept."""
    if is_causal is not None:
        return is_causal
    return (isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[0] == mask.shape[1]
            and (mask.dtype == torch.bool or mask.dtype.is_floating_point) and is_causal_mask(mask))


class TransformerEncoder(nn.Module):
    """N copies of an encoder layer (the paper's N = 6), then ``norm`` if given (pre-norm stacks need it).

    The drop-in for ``torch.nn.TransformerEncoder``: ``layers.0``, ``layers.1``, ..., ``norm``.
    ``enable_nested_tensor`` and ``mask_check`` are accepted for torch's signature and do nothing:
    torch's nested-tensor fast path (inference only) returns zeros at the padded positions, this
    stack their computed values; they agree everywhere else.
    """

    def __init__(self, encoder_layer: nn.Module, num_layers: int, norm: nn.Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        check_positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))  # each its own weights
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src: torch.Tensor, mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None, is_causal: bool | None = None) -> torch.Tensor:
        is_causal = _causal_hint(mask, is_causal)
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(nn.Module):
    """N copies of a decoder layer, each reading the same memory, then ``norm`` if given.

    The drop-in for ``torch.nn.TransformerDecoder``: ``layers.0``, ..., ``norm``.
    """

    def __init__(self, decoder_layer: nn.Module, num_layers: int, norm: nn.Module | None = None):
        super().__init__()
        check_positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(copy.deepcopy(decoder_layer) for _ in range(num_layers))
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> torch.Tensor:
        tgt_is_causal = _causal_hint(tgt_mask, tgt_is_causal)
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                      memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)


class Transformer(nn.Module):
    """The whole model: an encoder stack over the source, a decoder stack over the target and the memory.

    The drop-in for ``torch.nn.Transformer``: its arguments (the paper's base model by default:
    d_model 512, 8 heads, 6 + 6 layers, d_ff 2048, dropout 0.1), ``encoder`` and ``decoder``
    with a final LayerNorm each (``encoder.norm``, ``decoder.norm``), Xavier-uniform weights.
    Embeddings, positional encodings and the output softmax are outside, as in torch: see
    ``PositionalEncoding``.

    Shape: src (S, B, D), tgt (T, B, D) (batch first (B, S, D), (B, T, D); unbatched (S, D),
    (T, D)); the masks as the layers'; ``tgt_mask = Transformer.generate_square_subsequent_mask(T)``
    for training with teacher forcing. Returns (T, B, D) (tgt's shape).
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6, num_decoder_layers: int = 6,
                 dim_feedforward: int = 2048, dropout: float = 0.1, activation="relu",
                 custom_encoder: nn.Module | None = None, custom_decoder: nn.Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        layer = dict(d_model=d_model, nhead=nhead, dim_feedforward=dim_feedforward, dropout=dropout,
                     activation=activation, layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                     norm_first=norm_first, bias=bias, **factory)
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            self.encoder = TransformerEncoder(TransformerEncoderLayer(**layer), num_encoder_layers,
                                              nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            self.decoder = TransformerDecoder(TransformerDecoderLayer(**layer), num_decoder_layers,
                                              nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None,
                tgt_mask: torch.Tensor | None = None, memory_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None, tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None, src_is_causal: bool | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False) -> torch.Tensor:
        _check_sequence("src", src, self.d_model, self.batch_first, "S")
        _check_sequence("tgt", tgt, self.d_model, self.batch_first, "T")
        batch = 0 if self.batch_first else 1
        if src.dim() != tgt.dim() or (src.dim() == 3 and src.shape[batch] != tgt.shape[batch]):
            raise ValueError(f"src and tgt must both be batched with one batch size, or both unbatched, got src "
                             f"{_shape(src)} and tgt {_shape(tgt)} (batch_first={self.batch_first})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)  # the encoder's outputs: (S, B, D)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)  # (T, B, D)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> torch.Tensor:
        """The causal mask (sz, sz): 0 where j <= i, -inf where j > i (position i must not see the future).

        float32 on the CPU unless told, as torch's; a float64 model needs ``dtype=torch.float64``.
        """
        check_positive_int("sz", sz)
        future = torch.ones(sz, sz, dtype=torch.bool, device=device).triu(1)  # (sz, sz): j > i
        return torch.zeros(sz, sz, dtype=dtype or torch.float32, device=device).masked_fill(future, float("-inf"))


# -- the learning-rate schedule ------------------------------------------------------------------


def noam_lambda(d_model: int, warmup_steps: int = 4000, factor: float = 1.0):
    r"""The paper's learning rate at step n (section 5.3, eq. (3)), as a function of LambdaLR's step count s:

    .. math::

        \mathrm{lrate} = \mathrm{factor} \cdot d_{model}^{-0.5} \cdot \min(n^{-0.5},\; n \cdot
        \mathrm{warmup\_steps}^{-1.5}), \qquad n = s + 1

    linear warm-up for ``warmup_steps`` steps, then decay as 1 / sqrt(n); the peak, at n =
    warmup_steps, is factor / sqrt(d_model * warmup_steps). LambdaLR counts from s = 0 (its value
    before the first ``scheduler.step()``), the paper from n = 1, hence the shift.
    """
    check_positive_int("d_model", d_model)
    check_positive_int("warmup_steps", warmup_steps)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 0:
        raise ValueError(f"factor must be a positive number, got {factor!r}")

    def lrate(s: int) -> float:
        n = s + 1
        return factor * d_model ** -0.5 * min(n ** -0.5, n * warmup_steps ** -1.5)

    return lrate


def noam_schedule(optimizer: torch.optim.Optimizer, d_model: int, warmup_steps: int = 4000, factor: float = 1.0,
                  last_epoch: int = -1) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over ``optimizer`` with ``noam_lambda``: call ``scheduler.step()`` after every ``optimizer.step()``.

    LambdaLR multiplies each group's initial lr by the lambda: build the optimizer with ``lr=1.0``
    for the paper's rates (Adam, betas (0.9, 0.98), eps 1e-9, in the paper).
    """
    return torch.optim.lr_scheduler.LambdaLR(optimizer, noam_lambda(d_model, warmup_steps, factor), last_epoch)

r"""Attention: a query reads a weighted sum of values, weighted by how well it matches their keys.

The lecture's recipe, for one query vector q (a decoder state) and the keys k_1 ... k_S and values
v_1 ... v_S (usually both the encoder's states h_1 ... h_S):

.. math::

    a_j = a(q, k_j), \qquad \alpha = \mathrm{softmax}(a), \qquad c = \sum_j \alpha_j v_j

the scores a_j, normalised by a softmax to weights that sum to one, and the context c. Four score
functions a(q, k), each a module here:

=================== ================================ ====================================
``AdditiveScore``   w_2^T tanh(W_1 [q; k])            multi-layer perceptron (Bahdanau et al., 2015)
``BilinearScore``   q^T W k                           bilinear, Luong's "general" (Luong et al., 2015)
``DotScore``        q^T k                             dot product (Luong et al.): needs |q| = |k|
``ScaledDotScore``  q^T k / sqrt(|k|)                 scaled dot product (Vaswani et al., 2017)
=================== ================================ ====================================

``attend(query, keys, values, score, mask)`` is the recipe itself; padding is masked out of the
softmax, and a query whose keys are all masked reads nothing: zero weights and a zero context (no
NaN, in the values or in the gradients). ``scaled_dot_product_attention`` is the Transformer's
form for whole matrices of queries, Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, with the
arguments and semantics of ``torch.nn.functional.scaled_dot_product_attention``: from scratch, and
torch's fused kernel by default, tested equal.

Last, the "attention-based model" of the lecture: ``AttentionDecoder``, a decoder for
``seqmem.seq2seq.Seq2Seq`` that attends over the encoder's memory at every step, in the two forms
of 2015 (the equations are in its docstring): Bahdanau et al.'s, where the previous state queries
and the context enters the cell, and Luong et al.'s, where the new state queries and an
attentional hidden state h~_t gives the logits and is fed back into the next input.

Dimensions: B batch, T queries (decoder steps), S keys (source positions), Q query size, K key
size, A the additive score's hidden size, Vd value size, M memory size (the encoder's D * H),
E embedding size, H the decoder cell's hidden size, V vocabulary size; L and S, E and Ev in
``scaled_dot_product_attention`` as torch names them.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .cell import check_like
from .seq2seq import Bridge
from .text import PAD_ID

__all__ = ["Score", "AdditiveScore", "BilinearScore", "DotScore", "ScaledDotScore", "masked_softmax", "attend",
           "scaled_dot_product_attention", "AttentionState", "AttentionDecoder"]


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


# -- the score functions ---------------------------------------------------------------------------


class Score(nn.Module):
    """A score function a(q, k): ``score(query, keys)`` gives one score per key.

    A score splits into what depends on the keys only, ``prepare(keys)``, computed once per
    source (a decoder calls it once, not at every step), and ``compare(query, prepared)``; the
    call is ``compare(query, prepare(keys))``. A subclass writes ``_scores``, and ``prepare``
    where it has work to do there.

    Shape:
        query: (B, Q), or (B, T, Q) for T queries at once; keys: (B, S, K).
        returns the scores (B, S), or (B, T, S).
    """

    #: sizes the score was built for (None: any); ``prepared_size`` is the last dimension of prepare's output
    query_size: int | None = None
    key_size: int | None = None

    @property
    def prepared_size(self) -> int | None:
        return self.key_size

    def check_sizes(self, query_size: int, key_size: int) -> None:
        """A ``ValueError`` unless queries of Q features can be scored against keys of K features."""
        for name, want, got in (("query", self.query_size, query_size), ("key", self.key_size, key_size)):
            if want is not None and want != got:
                raise ValueError(f"{type(self).__name__} was built for {name}s of {want} features, got {got}")

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        """What the score computes from the keys alone (B, S, K) -> (B, S, prepared_size)."""
        _check_keys(keys, self.key_size)
        self._check_like(keys=keys)
        return keys

    def compare(self, query: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        """The scores of query (B, Q) or (B, T, Q) against prepared keys (B, S, ·): (B, S) or (B, T, S)."""
        name = "keys" if self.prepared_size == self.key_size else "prepared keys"
        single = _check_query(query, prepared, self.query_size, self.prepared_size, name)
        self._check_like(query=query, keys=prepared)
        q = query.unsqueeze(1) if single else query  # (B, T, Q)
        scores = self._scores(q, prepared)  # (B, T, S)
        return scores.squeeze(1) if single else scores

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return self.compare(query, self.prepare(keys))

    def _scores(self, q: torch.Tensor, prepared: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_like(self, **tensors: torch.Tensor) -> None:
        """Inputs share the parameters' dtype and device (or, without parameters, the first's)."""
        like = next(self.parameters(), None)
        if like is not None:
            return check_like(like, **tensors)
        (first, ref), *others = tensors.items()
        for name, t in others:
            if t.dtype != ref.dtype or t.device != ref.device:
                raise ValueError(f"{name} must have the {first}'s dtype and device ({ref.dtype} on {ref.device}), "
                                 f"got {t.dtype} on {t.device}")


def _check_keys(keys, key_size: int | None, name: str = "keys") -> None:
    if not isinstance(keys, torch.Tensor) or keys.dim() != 3 or (key_size is not None and keys.shape[-1] != key_size):
        raise ValueError(f"{name} must have shape (B, S, K) with K = {key_size or 'any'}, got {_shape(keys)}")


def _check_query(query, keys: torch.Tensor, query_size: int | None, keys_size: int | None,
                 name: str = "keys") -> bool:
    """query (B, Q) or (B, T, Q) against keys (B, S, ·); True for a single query per sample."""
    if not isinstance(query, torch.Tensor) or query.dim() not in (2, 3) or (
            query_size is not None and query.shape[-1] != query_size):
        raise ValueError(f"query must have shape (B, Q) or (B, T, Q) with Q = {query_size or 'any'}, "
                         f"got {_shape(query)}")
    _check_keys(keys, keys_size, name)
    if query.shape[0] != keys.shape[0]:
        raise ValueError(f"query and keys must share the batch size, got {_shape(query)} and {_shape(keys)}")
    return query.dim() == 2


class AdditiveScore(Score):
    r"""Bahdanau et al.'s score, a one-hidden-layer perceptron: a(q, k) = w_2^T tanh(W_1 [q; k]).

    W_1 [q; k] is written W_q q + W_k k (W_1 = [W_q, W_k]), so that the keys' half is computed once
    per source: ``prepare(keys)`` is W_k k, (B, S, A). No biases, as in the paper.

    Parameters: ``W_q.weight`` (A, Q), ``W_k.weight`` (A, K), ``w_2.weight`` (1, A).
    """

    def __init__(self, query_size: int, key_size: int, hidden_size: int):
        super().__init__()
        self.query_size, self.key_size, self.hidden_size = query_size, key_size, hidden_size
        self.W_q = nn.Linear(query_size, hidden_size, bias=False)  # (A, Q)
        self.W_k = nn.Linear(key_size, hidden_size, bias=False)  # (A, K)
        self.w_2 = nn.Linear(hidden_size, 1, bias=False)  # (1, A)

    @property
    def prepared_size(self) -> int:
        return self.hidden_size

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.W_k(super().prepare(keys))  # (B, S, A)

    def _scores(self, q, Wk_k):
        hidden = torch.tanh(self.W_q(q).unsqueeze(2) + Wk_k.unsqueeze(1))  # (B, T, 1, A) + (B, 1, S, A): (B, T, S, A)
        return self.w_2(hidden).squeeze(-1)  # (B, T, S)

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}, hidden_size={self.hidden_size}"


class BilinearScore(Score):
    """Luong et al.'s "general" score: a(q, k) = q^T W k, W (Q, K).

    ``prepare(keys)`` is W k (B, S, Q), once per source; a score is then a dot product with q.
    Parameter: ``W.weight`` (Q, K).
    """

    def __init__(self, query_size: int, key_size: int):
        super().__init__()
        self.query_size, self.key_size = query_size, key_size
        self.W = nn.Linear(key_size, query_size, bias=False)  # weight (Q, K): W k

    @property
    def prepared_size(self) -> int:
        return self.query_size

    def prepare(self, keys: torch.Tensor) -> torch.Tensor:
        return self.W(super().prepare(keys))  # (B, S, Q)

    def _scores(self, q, Wk):
        return q @ Wk.transpose(1, 2)  # (B, T, Q) @ (B, Q, S): (B, T, S)

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}"


class DotScore(Score):
    """Luong et al.'s dot score: a(q, k) = q^T k. No parameters, but queries and keys of one size."""

    def check_sizes(self, query_size: int, key_size: int) -> None:
        if query_size != key_size:
            raise ValueError(f"{type(self).__name__} needs queries and keys of one size (Q = K), got Q = "
                             f"{query_size} and K = {key_size}: use BilinearScore or AdditiveScore for two sizes")

    def _scores(self, q, k):
        self.check_sizes(q.shape[-1], k.shape[-1])
        return q @ k.transpose(1, 2)  # (B, T, K) @ (B, K, S): (B, T, S)


class ScaledDotScore(DotScore):
    """Vaswani et al.'s scaled dot product: a(q, k) = q^T k / sqrt(d), d = |k| the keys' size.

    The dot product of two vectors of d independent unit-variance entries has variance d; the
    scaling keeps the scores, and so the softmax, out of its flat tails as d grows.
    """

    def _scores(self, q, k):
        return super()._scores(q, k) / math.sqrt(k.shape[-1])  # (B, T, S)


# -- attending ------------------------------------------------------------------------------------


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The softmax over the last dimension among the entries where ``mask`` is True.

    Entries masked out (or scored -inf) get weight 0. A row with nothing left, every entry masked
    or -inf, gets all-zero weights, rather than the 0 / 0 = NaN of a plain softmax; its gradient is
    zero as well.

    ``mask`` is a bool tensor with as many dimensions as ``scores`` and the same last one (the
    keys); any other dimension is the scores' or 1: (B, 1, S) for every query of a sample, never a
    bare (B, S) against (B, T, S) scores, which would pair samples with queries (a ``ValueError``).
    """
    if mask is not None:
        _check_softmax_mask(mask, scores)
        scores = scores.masked_fill(~mask, float("-inf"))
    dead = torch.isneginf(scores).all(dim=-1, keepdim=True)  # rows where no entry takes part
    weights = torch.softmax(scores.masked_fill(dead, 0.0), dim=-1)  # finite everywhere: no NaN in the graph
    return weights.masked_fill(dead, 0.0)


def _check_softmax_mask(mask, scores: torch.Tensor) -> None:
    shape = tuple(scores.shape)
    fits = isinstance(mask, torch.Tensor) and mask.dtype == torch.bool and mask.dim() == len(shape) and \
        mask.shape[-1] == shape[-1] and all(m in (1, n) for m, n in zip(mask.shape, shape))
    if not fits:
        got = f"{_shape(mask)} of dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else _shape(mask)
        raise ValueError(f"mask must be a bool tensor with the scores' {len(shape)} dimensions, each the scores' "
                         f"size or 1 and the last {shape[-1]} (scores {shape}), got {got}")


def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, score: Callable,
           mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture's attention: score every key, softmax over the real ones, sum the values.

    Args:
        query: (B, Q) one query per sample, or (B, T, Q) T queries.
        keys: (B, S, K), as ``score`` reads them (a decoder passes keys it prepared once, with
            ``score=score_module.compare``).
        values: (B, S, Vd).
        score: a callable ``score(query, keys)`` giving (B, S) (or (B, T, S)): a ``Score`` module,
            or a ``Score``'s ``compare`` with prepared keys.
        mask: (B, S) bool, True at the keys that take part (a padded source's real tokens); for
            T queries also (B, T, S). ``None``: every key.

    Returns:
        ``(context, weights)``: context (B, Vd) (or (B, T, Vd)) = weights @ values, and the
        weights (B, S) (or (B, T, S)): alpha = softmax of the scores over the keys in the mask,
        summing to one. A query whose keys are all masked gets zero weights and a zero context.
    """
    if not isinstance(values, torch.Tensor) or values.dim() != 3 or not isinstance(keys, torch.Tensor) or \
            values.shape[:2] != keys.shape[:2]:
        raise ValueError(f"values must have shape (B, S, Vd) with the keys' (B, S), got values {_shape(values)} "
                         f"and keys {_shape(keys)}")
    scores = score(query, keys)  # (B, S) or (B, T, S)
    single = scores.dim() == 2
    if mask is not None:
        _check_mask(mask, scores)
        if not single and mask.dim() == 2:
            mask = mask.unsqueeze(1)  # (B, 1, S): the same keys for every query
    weights = masked_softmax(scores, mask)  # eq. (6) of Bahdanau et al.: alpha_j = exp(a_j) / sum_k exp(a_k)
    if single:
        return (weights.unsqueeze(1) @ values).squeeze(1), weights  # (B, 1, S) @ (B, S, Vd): (B, Vd)
    return weights @ values, weights  # (B, T, S) @ (B, S, Vd): (B, T, Vd)


def _check_mask(mask, scores: torch.Tensor) -> None:
    B, S = scores.shape[0], scores.shape[-1]
    allowed = [(B, S)] if scores.dim() == 2 else [(B, S), tuple(scores.shape)]
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) not in allowed:
        got = f"{_shape(mask)} of dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else _shape(mask)
        raise ValueError(f"mask must be a bool tensor of shape {' or '.join(map(str, allowed))}, got {got}")


# -- scaled dot-product attention, as torch's function -----------------------------------------------


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None,
                                 fused: bool | None = None) -> torch.Tensor:
    r"""Attention(Q, K, V) = softmax(Q K^T * scale + mask) V, as ``torch.nn.functional``'s.

    The arguments and semantics are torch's:

    - ``attn_mask``: a bool mask, True where a query may attend to a key (False becomes -inf), or
      a float mask of the query's dtype added to the scores; broadcast to (..., L, S).
    - ``is_causal``: query i attends to keys j <= i (the mask ``tril`` of (L, S), aligned at the
      top left, as torch's); not together with ``attn_mask``.
    - ``scale``: the scores' factor, 1 / sqrt(E) by default.
    - ``dropout_p``: dropout on the weights, whenever it is positive (the functional form knows no
      training mode: pass 0.0 to evaluate).

    A query whose keys are all masked (a bool row all False, or a float row all -inf) gets a zero
    output and zero gradients. That is what the pinned torch (2.13) returns on the CPU, so both
    paths agree with it there (the tests pin it); older torch releases gave NaN for such a row.
    A float mask must have the query's dtype (torch also takes float32 for a float64 query). The
    batch dimensions of q, k and v broadcast, as in torch. Grouped-query attention (torch's
    ``enable_gqa``) is not offered.

    Args:
        query: (..., L, E); key: (..., S, E); value: (..., S, Ev), one floating dtype and device.
        fused: ``True`` calls ``torch.nn.functional.scaled_dot_product_attention`` (a fused kernel
            where the device has one); ``False`` the from-scratch path below, the one the chapter
            explains; ``None`` (the default) chooses torch's kernel, which covers every
            configuration this function accepts. With dropout the two paths draw different masks.

    Returns:
        (..., L, Ev).
    """
    _check_sdpa(query, key, value, attn_mask, dropout_p, is_causal)
    if fused is None or fused:
        return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                                              is_causal=is_causal, scale=scale)
    return _sdpa_reference(query, key, value, attn_mask, dropout_p, is_causal, scale)


def _sdpa_reference(q, k, v, attn_mask, dropout_p: float, is_causal: bool, scale: float | None):
    """The from-scratch path: Vaswani et al.'s eq. (1), with the mask and dropout of torch's function."""
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L, E) @ (..., E, S): (..., L, S)
    if is_causal:
        attn_mask = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()  # (L, S): j <= i
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        scores, attn_mask = scores + attn_mask, None  # an additive mask: -inf drops a key
    if attn_mask is not None:  # torch's broadcasting: leading dims of 1 where the mask has fewer
        attn_mask = attn_mask.reshape((1,) * (scores.dim() - attn_mask.dim()) + tuple(attn_mask.shape))
    weights = masked_softmax(scores, attn_mask)  # (..., L, S); a row with no key: zeros
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return weights @ v  # (..., L, S) @ (..., S, Ev): (..., L, Ev)


def _check_sdpa(q, k, v, attn_mask, dropout_p, is_causal) -> None:
    """ValueErrors, saying what was expected, for everything torch's function would refuse."""
    for name, t in (("query", q), ("key", k), ("value", v)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            raise ValueError(f"{name} must be a tensor of at least 2 dims (..., L or S, E), got {_shape(t)}")
    if not q.dtype.is_floating_point or q.dtype != k.dtype or q.dtype != v.dtype:
        raise ValueError(f"query, key and value must share one floating dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.device != k.device or q.device != v.device:
        raise ValueError(f"query, key and value must be on one device, got {q.device}, {k.device}, {v.device}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"expected query (..., L, E), key (..., S, E) and value (..., S, Ev), got "
                         f"{_shape(q)}, {_shape(k)} and {_shape(v)}")
    batch = _broadcast(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if batch is None:
        raise ValueError(f"the batch dimensions of query, key and value must broadcast, got {_shape(q)}, "
                         f"{_shape(k)} and {_shape(v)}")
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout_p must be a number in [0, 1], got {dropout_p!r}")
    if attn_mask is not None:
        _check_attn_mask(attn_mask, q, (*batch, q.shape[-2], k.shape[-2]), is_causal)


def _broadcast(*shapes) -> tuple | None:
    """The shape the given shapes broadcast to, or None if they do not (torch.broadcast_shapes, but
    cheap: these checks run before every call of the fused kernel)."""
    if all(s == shapes[0] for s in shapes):
        return tuple(shapes[0])
    n = max(len(s) for s in shapes)
    out = []
    for dims in zip(*((1,) * (n - len(s)) + tuple(s) for s in shapes)):  # aligned at the right
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _check_attn_mask(attn_mask, q: torch.Tensor, scores_shape: tuple, is_causal: bool) -> None:
    if is_causal:
        raise ValueError("pass either attn_mask or is_causal=True, not both (torch refuses the pair too)")
    if not isinstance(attn_mask, torch.Tensor) or attn_mask.dtype not in (torch.bool, q.dtype):
        got = attn_mask.dtype if isinstance(attn_mask, torch.Tensor) else type(attn_mask).__name__
        raise ValueError(f"attn_mask must be bool or of the query's dtype {q.dtype}, got {got}")
    if _broadcast(attn_mask.shape, scores_shape) != scores_shape:
        raise ValueError(f"attn_mask must broadcast to the scores' shape (..., L, S) = {scores_shape}, "
                         f"got {_shape(attn_mask)}")
    if attn_mask.device != q.device:
        raise ValueError(f"attn_mask is on {attn_mask.device} but query is on {q.device}")


# -- the attention-based decoder -------------------------------------------------------------------


class AttentionState(NamedTuple):
    """An ``AttentionDecoder``'s state, batch first: everything a step reads or reveals.

    ``map_state`` reorders it as any state (beam search does), the prepared keys included.
    """

    cell: object  # the cell's state: s_t (Bahdanau) or h_t (Luong), a tensor (B, H) or an LSTMState
    context: torch.Tensor  # c_t (B, M), the last step's context; zeros before the first step
    attentional: torch.Tensor | None  # Luong's h~_t (B, H), fed to the next step; None for Bahdanau
    weights: torch.Tensor  # alpha_t (B, S), the last step's attention weights; zeros before the first step
    keys: torch.Tensor  # the score's prepared keys (B, S, ·): computed once by ``start``, never changed


def _hidden(state) -> torch.Tensor:
    """A cell state's h: the tensor itself, or the first part (h of an ``LSTMState(h, c)``)."""
    return state if isinstance(state, torch.Tensor) else state[0]


class AttentionDecoder(nn.Module):
    r"""A decoder that attends over the encoder's memory at every step: the attention-based model.

    With the memory h_1 ... h_S (the encoder's outputs, (B, S, M), 0 at the padding), the
    embedding e(y_{t-1}) of the previous token, the cell f and the score a:

    ``style="bahdanau"`` (Bahdanau et al., 2015, eqs. (4)-(6)): the previous state queries, and
    the context is an input of the cell,

    .. math::

        \alpha_t = \mathrm{softmax}_j\, a(s_{t-1}, h_j), \quad c_t = \textstyle\sum_j \alpha_{tj} h_j, \quad
        s_t = f(s_{t-1}, [e(y_{t-1}); c_t]), \quad \mathrm{logits}_t = W^o [s_t; c_t; e(y_{t-1})]

    (the paper's output layer is a maxout over the same three inputs; here a linear layer).

    ``style="luong"`` (Luong et al., 2015, eqs. (5)-(6) and input feeding): the new state queries,
    and an attentional hidden state gives the logits and is fed to the next step,

    .. math::

        h_t = f(h_{t-1}, [e(y_{t-1}); \tilde h_{t-1}]), \quad \alpha_t = \mathrm{softmax}_j\, a(h_t, h_j), \quad
        \tilde h_t = \tanh(W_c [c_t; h_t]), \quad \mathrm{logits}_t = W_s \tilde h_t

    with h~_0 = 0. In both, s_0 (h_0) is the encoder's context through a ``Bridge`` (with
    ``context_size``) or the cell's zero state.

    Args:
        cell: any cell of the library reading E + M features (Bahdanau) or E + H (Luong).
        memory_size: M, the encoder's ``output_size``.
        score: a ``Score`` for queries of H and keys of M features (``DotScore`` needs H = M).
        context_size: the encoder's ``context_size`` for a bridge, or ``None`` for a zero s_0.

    The decoding protocol of ``Seq2Seq``: ``start(context, memory, mask)`` gives an
    ``AttentionState`` (the keys prepared once); ``step(state, tokens, memory, mask)`` gives
    ``(state, logits (B, V))``, the step's weights alpha_t (B, S) in ``state.weights``
    (``Seq2Seq.forward(..., return_weights=True)`` collects them for an alignment figure).
    """

    def __init__(self, vocab_size: int, embedding_dim: int, cell: nn.Module, memory_size: int, score: Score,
                 style: str = "bahdanau", context_size: int | None = None, pad_id: int = PAD_ID):
        super().__init__()
        if style not in ("bahdanau", "luong"):
            raise ValueError(f"style must be 'bahdanau' or 'luong', got {style!r}")
        H = cell.hidden_size
        fed = memory_size if style == "bahdanau" else H  # what the cell reads besides the embedding
        if getattr(cell, "input_size", None) != embedding_dim + fed:
            what = "M (the context)" if style == "bahdanau" else "H (input feeding)"
            raise ValueError(f"a {style} cell must read embedding_dim + {what} = {embedding_dim} + {fed} features, "
                             f"got input_size={getattr(cell, 'input_size', None)}")
        if getattr(cell, "output_size", H) != H:
            raise ValueError(f"the cell's output must be its hidden state h (H = {H}), "
                             f"got output_size={cell.output_size}")
        score.check_sizes(H, memory_size)
        self.style, self.memory_size = style, memory_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_id)  # (V, E)
        self.cell, self.score = cell, score
        self.bridge = None if context_size is None else Bridge(context_size, cell.state_sizes(), cell.state_type)
        if style == "bahdanau":
            self.out = nn.Linear(H + memory_size + embedding_dim, vocab_size)  # W^o: (V, H + M + E)
        else:
            self.W_c = nn.Linear(memory_size + H, H, bias=False)  # (H, M + H), eq. (5)
            self.out = nn.Linear(H, vocab_size)  # W_s: (V, H), eq. (6)

    def start(self, context, memory: torch.Tensor, mask: torch.Tensor) -> AttentionState:
        """The state before the first step: s_0 from the context, the keys prepared from the memory."""
        B, S, M = memory.shape
        if M != self.memory_size:
            raise ValueError(f"memory must have shape (B, S, {self.memory_size}), got {_shape(memory)}")
        cell = self.cell.initial_state(B) if self.bridge is None else self.bridge(context)
        attentional = memory.new_zeros(B, self.cell.hidden_size) if self.style == "luong" else None  # h~_0 = 0
        return AttentionState(cell, memory.new_zeros(B, M), attentional, memory.new_zeros(B, S),
                              self.score.prepare(memory))

    def step(self, state: AttentionState, tokens: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        """One step: ``(state, logits (B, V))`` from the previous tokens (B,)."""
        e = self.embedding(tokens)  # e(y_{t-1}): (B, E)
        if self.style == "bahdanau":
            return self._bahdanau_step(state, e, memory, mask)
        return self._luong_step(state, e, memory, mask)

    def _bahdanau_step(self, state: AttentionState, e: torch.Tensor, memory, mask):
        c, alpha = attend(_hidden(state.cell), state.keys, memory, self.score.compare, mask)  # (B, M), (B, S)
        cell, s = self.cell(state.cell, torch.cat([e, c], dim=-1))  # s_t = f(s_{t-1}, [e; c_t]): (B, H)
        logits = self.out(torch.cat([s, c, e], dim=-1))  # W^o [s_t; c_t; e(y_{t-1})]: (B, V)
        return AttentionState(cell, c, None, alpha, state.keys), logits

    def _luong_step(self, state: AttentionState, e: torch.Tensor, memory, mask):
        cell, h = self.cell(state.cell, torch.cat([e, state.attentional], dim=-1))  # input feeding: (B, H)
        c, alpha = attend(h, state.keys, memory, self.score.compare, mask)  # (B, M), (B, S)
        h_tilde = torch.tanh(self.W_c(torch.cat([c, h], dim=-1)))  # eq. (5): (B, H)
        return AttentionState(cell, c, h_tilde, alpha, state.keys), self.out(h_tilde)  # eq. (6): (B, V)

    def extra_repr(self) -> str:
        return f"style={self.style!r}, memory_size={self.memory_size}"

r"""Addressing an external memory by content: the mechanism the NTM and the DNC share.

A memory is a matrix $M$ of N slots (rows) of W numbers each, batched: (B, N, W). A head looks a
slot up by **content**: it emits a key $k$ (W numbers) and a key strength $\beta \ge 0$, compares
the key with every row by cosine similarity and turns the similarities into weights over the
slots with a softmax sharpened by $\beta$ (Graves et al. 2014, eq. 5-6; the DNC's
$\mathcal{C}(M, k, \beta)$, Graves et al. 2016, Methods):

$$
K[k, M_i] = \frac{k \cdot M_i}{\lVert k \rVert \, \lVert M_i \rVert}, \qquad
w^c_i = \frac{\exp\left(\beta \, K[k, M_i]\right)}{\sum_j \exp\left(\beta \, K[k, M_j]\right)}.
$$

Norms are taken as $\sqrt{\sum x^2 + \epsilon}$, so that an all-zero memory (the state every
sequence starts from) or an all-zero key gives similarity 0 and finite gradients, instead of 0/0.
Reading and writing, which both machines do the same way, are here too: a read is a weighted sum
of rows, $r = \sum_i w_i M_i$ (NTM eq. 2), and a write erases then adds,
$M_i \leftarrow M_i \circ (1 - w_i e) + w_i a$ (NTM eq. 3-4; the DNC's
$M \circ (E - w e^\top) + w v^\top$). The location mechanisms of the NTM are in ``seqmem.ntm``; the DNC's allocation and temporal links
in ``seqmem.dnc``: one mechanism per function.

Dimensions: B batch, R heads, N memory slots, W word size.
"""
from __future__ import annotations

import torch

__all__ = ["EPSILON", "cosine_similarity", "content_addressing", "read", "write"]

#: Added under every square root and to every denominator of the addressing functions.
EPSILON = 1e-6


def _keys(memory: torch.Tensor, k: torch.Tensor, name: str = "k") -> tuple[torch.Tensor, bool]:
    """Memory (B, N, W) and keys (B, W) or (B, R, W) checked; keys as (B, R, W) and whether R was added."""
    if memory.dim() != 3:
        raise ValueError(f"memory must be (B, N, W), got shape {tuple(memory.shape)}")
    B, _, W = memory.shape
    if k.dim() not in (2, 3) or k.shape[0] != B or k.shape[-1] != W:
        raise ValueError(f"{name} must be (B, W) = ({B}, {W}) or (B, R, W) = ({B}, R, {W}) for a memory "
                         f"of shape {tuple(memory.shape)}, got shape {tuple(k.shape)}")
    return (k.unsqueeze(1), True) if k.dim() == 2 else (k, False)


def cosine_similarity(memory: torch.Tensor, k: torch.Tensor, eps: float = EPSILON) -> torch.Tensor:
    r"""$K[k, M_i]$ for every slot i: memory (B, N, W), keys (B, W) or (B, R, W) -> (B, N) or (B, R, N).

    Each norm is $\sqrt{\sum x^2 + \epsilon}$: a zero row or key has similarity 0, never NaN.
    """
    keys, single = _keys(memory, k)
    if k.dtype != memory.dtype or k.device != memory.device:
        raise ValueError(f"k must have the memory's dtype and device ({memory.dtype}, {memory.device}), "
                         f"got ({k.dtype}, {k.device})")
    dots = keys @ memory.transpose(1, 2)  # (B, R, W) @ (B, W, N) -> (B, R, N)
    k_norm = (keys.pow(2).sum(-1, keepdim=True) + eps).sqrt()  # (B, R, 1)
    m_norm = (memory.pow(2).sum(-1) + eps).sqrt().unsqueeze(1)  # (B, 1, N)
    K = dots / (k_norm * m_norm)  # (B, R, N), in (-1, 1)
    return K.squeeze(1) if single else K


def content_addressing(memory: torch.Tensor, k: torch.Tensor, beta: torch.Tensor,
                       eps: float = EPSILON) -> torch.Tensor:
    r"""The content weighting $w^c = \mathrm{softmax}(\beta \, K[k, M])$ over the N slots (NTM eq. 5).

    memory (B, N, W); keys k (B, W) with strengths beta (B,) or (B, 1), or keys (B, R, W) with
    beta (B, R) or (B, R, 1): one weighting per head, (B, N) or (B, R, N), each summing to one.
    beta must be non-negative (a head emits it through softplus or 1 + softplus).
    """
    K = cosine_similarity(memory, k, eps)  # (B, N) or (B, R, N)
    if not isinstance(beta, torch.Tensor) or beta.dtype != memory.dtype or beta.device != memory.device:
        got = (beta.dtype, beta.device) if isinstance(beta, torch.Tensor) else type(beta).__name__
        raise ValueError(f"beta must be a tensor of the memory's dtype and device ({memory.dtype}, "
                         f"{memory.device}), got {got}")
    lead = tuple(K.shape[:-1])
    if beta.shape == lead + (1,):
        beta = beta.squeeze(-1)
    if tuple(beta.shape) != lead:
        raise ValueError(f"beta must have shape {lead} or {lead + (1,)} (one strength per key), "
                         f"got shape {tuple(beta.shape)}")
    return torch.softmax(beta.unsqueeze(-1) * K, dim=-1)  # NTM eq. 5: (..., N), sums to one


def _weights(memory: torch.Tensor, w: torch.Tensor, name: str = "w") -> tuple[torch.Tensor, bool]:
    """Weights (B, N) or (B, R, N) over the memory's slots, checked; as (B, R, N) and whether R was added."""
    if memory.dim() != 3:
        raise ValueError(f"memory must be (B, N, W), got shape {tuple(memory.shape)}")
    B, N, _ = memory.shape
    if w.dim() not in (2, 3) or w.shape[0] != B or w.shape[-1] != N:
        raise ValueError(f"{name} must be (B, N) = ({B}, {N}) or (B, R, N) = ({B}, R, {N}) for a memory "
                         f"of shape {tuple(memory.shape)}, got shape {tuple(w.shape)}")
    return (w.unsqueeze(1), True) if w.dim() == 2 else (w, False)


def read(memory: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r"""$r = \sum_i w_i M_i$ (NTM eq. 2): memory (B, N, W), weights (B, N) or (B, R, N) -> (B, W) or (B, R, W)."""
    weights, single = _weights(memory, w)
    r = weights @ memory  # (B, R, N) @ (B, N, W) -> (B, R, W)
    return r.squeeze(1) if single else r


def write(memory: torch.Tensor, w: torch.Tensor, e: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    r"""Erase then add (NTM eq. 3-4): $M_i \leftarrow M_i \circ (1 - w_i e) + w_i a$, a new memory (B, N, W).

    One write head: weights w (B, N), erase vector e (B, W) in [0, 1], add vector a (B, W). The
    memory passed in is not modified (the state of the previous step stays as it was).
    """
    weights, _ = _weights(memory, w)
    if weights.shape[1] != 1:
        raise ValueError(f"write takes one head's weights (B, N), got shape {tuple(w.shape)}")
    B, _, W = memory.shape
    for name, v in (("e", e), ("a", a)):
        if tuple(v.shape) != (B, W):
            raise ValueError(f"{name} must be (B, W) = ({B}, {W}), got shape {tuple(v.shape)}")
    w_col = weights.transpose(1, 2)  # (B, N, 1)
    erased = memory * (1 - w_col * e.unsqueeze(1))  # eq. 3: (B, N, W)
    return erased + w_col * a.unsqueeze(1)  # eq. 4: (B, N, W)

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
The location mechanisms of the NTM are in ``seqmem.ntm``; the DNC's allocation and temporal links
in ``seqmem.dnc``: one mechanism per function.

Dimensions: B batch, R heads, N memory slots, W word size.
"""
from __future__ import annotations

import torch

__all__ = ["EPSILON", "cosine_similarity", "content_addressing"]

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
    lead = tuple(K.shape[:-1])
    if beta.shape == lead + (1,):
        beta = beta.squeeze(-1)
    if tuple(beta.shape) != lead:
        raise ValueError(f"beta must have shape {lead} or {lead + (1,)} (one strength per key), "
                         f"got shape {tuple(beta.shape)}")
    return torch.softmax(beta.unsqueeze(-1) * K, dim=-1)  # NTM eq. 5: (..., N), sums to one

"""Homework 7's checks: content addressing for several heads at once, the NTM's location pipeline
(interpolation, a circular shift of any width, sharpening) in one function, a write by several
heads at once, and the DNC's allocation weightings for several write heads.

Each item is a sibling of what chapter 8 shows through the library (``seqmem.addressing``,
``seqmem.ntm``, ``seqmem.dnc``): the chapter builds one head, shifts of -1, 0, +1, one write head
and one allocation; here the batch holds R heads, S is any width, H heads write at once and K
heads allocate one after the other. As in the other homework modules: the student's function runs
through ``guard.call`` on fresh inputs drawn from ``guard.item_seed``; its result is validated,
then compared with the reference computed here, in float64.
"""
from __future__ import annotations

from typing import Callable

import torch

from .guard import call, close, guard_tensor, item_seed, register, torch_compilers

__all__ = ["check_content_weights", "check_location_weights", "check_write_heads", "check_allocation_weights",
           "content_weights_reference", "location_weights_reference", "write_heads_reference",
           "allocation_weights_reference", "EPSILON"]

#: Under the square root of every norm of item 1, as the library's content addressing.
EPSILON = 1e-6


def _memory_references() -> list:
    """Every function and cell method of the library's memory modules, and torch's cosine similarity
    (a one-line answer to item 1 with its own epsilon rule)."""
    from .. import addressing, dnc, ntm

    functions = [f for m in (addressing, ntm, dnc) for n, f in vars(m).items()
                 if callable(f) and getattr(f, "__module__", None) == m.__name__ and not isinstance(f, type)]
    methods = [(cls, n) for m in (ntm, dnc) for cls in vars(m).values()
               if isinstance(cls, type) and getattr(cls, "__module__", None) == m.__name__
               for n, f in vars(cls).items() if callable(f) and not n.startswith("__")]
    return [*functions, *methods, (torch.nn.functional, "cosine_similarity"), (torch, "cosine_similarity"),
            *torch_compilers(), "cosine_similarity"]  # the stem: torch.ops.aten's and torch._C's routes too


register({item: _memory_references
          for item in ("content_weights", "location_weights", "write_heads", "allocation_weights")})


def _dtype(k: int) -> torch.dtype:
    return torch.float64 if k % 2 else torch.float32


def _sizes(g: torch.Generator, k: int, smallest: tuple, high: int = 7) -> tuple:
    """The first trial's smallest sizes, then random ones in 1 ... high - 1."""
    return smallest if k == 0 else tuple(int(x) for x in torch.randint(1, high, (len(smallest),), generator=g))


# ------------------------------------------------------------------------------ 1. content weights

def content_weights_reference(memory, keys, beta) -> torch.Tensor:
    """(B, R, N): softmax over slots of beta * cosine(keys, rows), norms sqrt(sum x^2 + EPSILON)."""
    M, k, b = memory.double(), keys.double(), beta.double()
    dots = torch.einsum("brw,bnw->brn", k, M)
    norms = (k.pow(2).sum(-1) + EPSILON).sqrt()[:, :, None] * (M.pow(2).sum(-1) + EPSILON).sqrt()[:, None, :]
    return torch.softmax(b[:, :, None] * dots / norms, dim=-1).to(memory.dtype)


def check_content_weights(fn: Callable, trials: int = 8, seed: int = 503) -> None:
    """Check ``fn(memory, keys, beta) -> (B, R, N)``.

    memory (B, N, W), keys (B, R, W), beta (B, R) >= 0. Tried in float32 and float64, with B = R =
    N = W = 1, rows and keys of zeros (similarity 0, never NaN), beta = 0 (uniform) and large.
    """
    item = "content_weights"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, R, N, W = _sizes(g, k, (1, 1, 1, 1))
        R = max(R, 2) if k == 4 else R
        memory = torch.randn(B, N, W, generator=g, dtype=dtype)
        keys = torch.randn(B, R, W, generator=g, dtype=dtype)
        beta = 5 * torch.rand(B, R, generator=g, dtype=dtype)
        if k in (2, 3):
            memory[:, :: 2] = 0.0  # empty slots, as at the start of every sequence
            keys[:, 0] = 0.0
        if k == 4:
            beta[:, 0], beta[:, 1] = 0.0, 60.0  # uniform; and all on the most similar slot
        out = call(item, fn, memory.clone(), keys.clone(), beta.clone())
        guard_tensor(item, out, (B, R, N), dtype)
        close(item, out, content_weights_reference(memory, keys, beta),
              what=f"weighting for B={B}, R={R}, N={N}, W={W}, beta={beta.tolist()} ({dtype})")


# ------------------------------------------------------------------------------ 2. the location pipeline

def location_weights_reference(w_c, w_prev, g, s, gamma) -> torch.Tensor:
    """(B, N): interpolate by g, shift circularly by s over -S..S, sharpen by gamma (NTM eq. 7-9)."""
    dtype = w_c.dtype
    w_c, w_prev, g, s, gamma = (t.double() for t in (w_c, w_prev, g, s, gamma))
    w_g = g[:, None] * w_c + (1 - g[:, None]) * w_prev
    N, S = w_g.shape[1], s.shape[1] // 2
    w_tilde = torch.zeros_like(w_g)
    for k in range(2 * S + 1):  # the weight s[:, k] moves the focus by k - S slots
        w_tilde = w_tilde + s[:, k:k + 1] * torch.roll(w_g, shifts=k - S, dims=1)
    powered = w_tilde ** gamma[:, None]
    return (powered / powered.sum(1, keepdim=True)).to(dtype)


def _distribution(g: torch.Generator, B: int, n: int, dtype, scale: float = 1.0) -> torch.Tensor:
    return torch.softmax(scale * torch.randn(B, n, generator=g, dtype=torch.float64), dim=1).to(dtype)


def check_location_weights(fn: Callable, trials: int = 8, seed: int = 509) -> None:
    """Check ``fn(w_c, w_prev, g, s, gamma) -> (B, N)``.

    w_c, w_prev (B, N) weightings; g (B,) in [0, 1]; s (B, 2S + 1) a distribution over the shifts
    -S ... S (N >= 2S + 1); gamma (B,) >= 1. Tried in float32 and float64, with g = 0 and 1, S = 0,
    the widest shift N = 2S + 1, a one-hot shift by +1 and by -S (the wrap-around), gamma = 1.
    """
    item = "location_weights"
    gen = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B = 1 if k == 0 else int(torch.randint(1, 6, (), generator=gen))
        B = max(B, 2) if k == 3 else B  # row 0 and the last row differ in that trial
        S = 0 if k == 1 else int(torch.randint(1, 4, (), generator=gen))
        N = 2 * S + 1 if k in (0, 2) else 2 * S + 1 + int(torch.randint(0, 6, (), generator=gen))
        w_c, w_prev = _distribution(gen, B, N, dtype, 2.0), _distribution(gen, B, N, dtype, 2.0)
        g = torch.rand(B, generator=gen, dtype=dtype)
        s = _distribution(gen, B, 2 * S + 1, dtype)
        gamma = 1 + 3 * torch.rand(B, generator=gen, dtype=dtype)
        if k == 3:
            g[0], gamma[0] = 0.0, 1.0  # the previous weighting, merely shifted
            g[-1] = 1.0
            s[:] = 0.0
            s[:, S + 1] = 1.0  # one slot forward, exactly
        if k == 4:
            s[:] = 0.0
            s[:, 0] = 1.0  # S slots back: past slot 0 to the last slots
        out = call(item, fn, w_c.clone(), w_prev.clone(), g.clone(), s.clone(), gamma.clone())
        guard_tensor(item, out, (B, N), dtype)
        close(item, out, location_weights_reference(w_c, w_prev, g, s, gamma),
              what=f"weighting for B={B}, N={N}, S={S}, g={g.tolist()}, gamma={gamma.tolist()} ({dtype})")


# ------------------------------------------------------------------------------ 3. several write heads

def write_heads_reference(memory, w, e, a) -> torch.Tensor:
    """(B, N, W): M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T (NTM section 3.2, several heads)."""
    M, w, e, a = (t.double() for t in (memory, w, e, a))
    keep = torch.ones_like(M)
    for h in range(w.shape[1]):
        keep = keep * (1 - w[:, h, :, None] * e[:, h, None, :])
    return (M * keep + torch.einsum("bhn,bhw->bnw", w, a)).to(memory.dtype)


def check_write_heads(fn: Callable, trials: int = 8, seed: int = 521) -> None:
    """Check ``fn(memory, w, e, a) -> (B, N, W)``, the memory after H heads write at once.

    memory (B, N, W); w (B, H, N) a weighting per head; e (B, H, W) in [0, 1]; a (B, H, W). Tried in
    float32 and float64, with H = 1, heads on the same slot (erasures multiply), e = 0 and 1. The
    memory passed in must stay as it was: checked here when ``fn`` is local; a remote function
    receives copies, so there the item's visible test (which runs in the student's kernel) checks it.
    """
    item = "write_heads"
    gen = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, H, N, W = _sizes(gen, k, (1, 1, 1, 1))
        H = 1 if k == 1 else max(H, 2) if k in (2, 3) else H
        memory = torch.randn(B, N, W, generator=gen, dtype=dtype)
        w = _distribution(gen, B * H, N, dtype, 3.0).reshape(B, H, N)
        e = torch.rand(B, H, W, generator=gen, dtype=dtype)
        a = torch.randn(B, H, W, generator=gen, dtype=dtype)
        if k == 2:
            w[:] = 0.0
            w[:, :, 0] = 1.0  # every head on slot 0
        if k == 3:
            e[:, 0], e[:, -1] = 0.0, 1.0
        before = memory.clone()
        out = call(item, fn, memory, w.clone(), e.clone(), a.clone())
        guard_tensor(item, out, (B, N, W), dtype)
        close(item, memory, before, what=f"memory passed in (it was changed in place; return a new one) ({dtype})")
        close(item, out, write_heads_reference(before, w, e, a),
              what=f"memory after the write for B={B}, H={H}, N={N}, W={W} ({dtype})")


# ------------------------------------------------------------------------------ 4. allocation for K write heads

def allocation_weights_reference(usage, write_gates) -> torch.Tensor:
    """(B, K, N): head k allocates by the usage left by heads 0 ... k-1, u <- u + (1 - u) g_k a_k."""
    u, gates = usage.double(), write_gates.double()
    out = []
    for k in range(gates.shape[1]):
        order = torch.sort(u, dim=1, stable=True).indices  # ascending usage, ties by slot
        sorted_u = u.gather(1, order)
        before = torch.cumprod(torch.cat([torch.ones_like(sorted_u[:, :1]), sorted_u[:, :-1]], 1), 1)
        a = torch.zeros_like(u).scatter(1, order, (1 - sorted_u) * before)
        out.append(a)
        u = u + (1 - u) * gates[:, k:k + 1] * a
    return torch.stack(out, 1).to(usage.dtype)


def check_allocation_weights(fn: Callable, trials: int = 8, seed: int = 523) -> None:
    """Check ``fn(usage, write_gates) -> (B, K, N)``.

    usage (B, N) in [0, 1]; write_gates (B, K) in [0, 1]. Tried in float32 and float64, with K = 1,
    a fresh memory (usage all 0: ties, broken by the lower slot), a full one (usage all 1: nothing
    to allocate), usages equal in places, gates of 0 (the next head sees the same usage) and 1.
    """
    item = "allocation_weights"
    gen = torch.Generator().manual_seed(item_seed(item, seed))
    for k in range(trials):
        dtype = _dtype(k)
        B, K, N = _sizes(gen, k, (1, 1, 1))
        K, B = (1 if k == 1 else max(K, 2) if k == 3 else K), (max(B, 2) if k == 2 else B)
        usage = torch.rand(B, N, generator=gen, dtype=dtype)
        gates = torch.rand(B, K, generator=gen, dtype=dtype)
        if k == 2:
            usage[:] = 0.0  # a fresh memory
            usage[-1] = 1.0  # and a full one
        if k == 3:
            usage = torch.randint(0, 3, (B, N), generator=gen).to(dtype) / 2  # ties
            gates[:, 0] = 0.0
            gates[:, -1] = 1.0
        out = call(item, fn, usage.clone(), gates.clone())
        guard_tensor(item, out, (B, K, N), dtype)
        close(item, out, allocation_weights_reference(usage, gates),
              what=f"allocation for usage={usage.tolist()}, write_gates={gates.tolist()} ({dtype})")


GRADER_HELPERS: list = []  # the references above are whole: no helper of theirs to block

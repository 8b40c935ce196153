"""Homework 1's checks: the RNN over a padded batch, BPTT through a read-out, clipping in place.

Each item is a sibling of what chapters 1 and 2 show (the book unrolls one sequence, back-propagates
a given dL/dh_t and clips a dict of arrays into a new one). Each check runs the student's function
(``guard.call``: in the sandboxed worker under autograding) on fresh random inputs and shapes
drawn from ``guard.item_seed``, in float32 and float64, validates the type, shape and dtype of what
comes back, then computes the reference itself and compares.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .guard import (call, close, decompositions, fail, guard_array, guard_tuple, item_seed, register,
                    torch_compilers)

__all__ = ["check_rnn_forward_padded", "check_bptt_with_readout", "check_clip_grads_"]


def recurrent_layers() -> list:
    """The library's layers, which run any cell (and torch's fused kernels)."""
    from .. import layers

    return [layers.run_stacked, (layers.Stacked, "forward"), (layers.RecurrentLayer, "forward")]


def autograd() -> list:
    """torch's automatic differentiation, by its Python entry points and by the backward kernels
    it runs (their names contain "backward": tanh_backward, sigmoid_backward, ...)."""
    import torch.autograd.functional as functional
    import torch.func

    return [torch.autograd.grad, torch.autograd.backward, (torch.Tensor, "backward"),
            *[(functional, n) for n in ("jacobian", "hessian", "vjp", "jvp", "vhp", "hvp")],
            *[(torch.func, n) for n in ("grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd")],
            "backward"]


def _rnn_references() -> list:
    from .. import relatives, remedies, rnn

    return [rnn.rnn_step, (rnn.RNNCell, "forward"), (rnn.NaiveRNNCell, "forward"), (rnn.RNN, "forward"),
            remedies.skip_rnn_step, (remedies.SkipRNNCell, "forward"), relatives.scrn_step,
            (relatives.SCRNCell, "forward"), *recurrent_layers(), (torch.nn.RNNCell, "forward"),
            (torch.nn.RNN, "forward"), *decompositions("rnn"), *torch_compilers(), "rnn"]


def _bptt_references() -> list:
    """BPTT's backward pass, the library's and torch's (autograd); ``bptt.forward`` stays a tool."""
    from .. import bptt

    return [bptt.backward, bptt._backward_full, bptt._backward_truncated, *autograd()]


def _clip_references() -> list:
    from .. import bptt

    names = ("clip_grad_norm_", "clip_grad_norm", "clip_grads_with_norm_", "clip_grad_value_")
    return [bptt.clip_grad_norm] + [(torch.nn.utils, n) for n in names if hasattr(torch.nn.utils, n)]


register({"rnn_forward_padded": _rnn_references, "bptt_with_readout": _bptt_references,
          "clip_grads_": _clip_references})


def _dtypes(trials: int):
    return [torch.float64 if k % 2 else torch.float32 for k in range(trials)]


# ------------------------------------------------------------------------------ 1. the padded batch

def _padded_cases(g: torch.Generator, trials: int):
    """(B, T, I, H) with the edge cases B = T = 1 and a batch whose lengths run from 1 to T."""
    sizes = [(1, 1, 1, 1), (4, 5, 2, 3)]
    sizes += [tuple(int(v) for v in torch.randint(1, 7, (4,), generator=g)) for _ in range(trials)]
    return sizes[:trials]


def rnn_padded_reference(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    """The tanh RNN run on each sequence up to its length: hs (B, T, H), zero after the end, and the
    last real state of each sequence (B, H)."""
    h, hs = h0, []
    for t in range(xs.shape[1]):
        new = torch.tanh(xs[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)  # (B, H)
        running = (t < lengths)[:, None]  # (B, 1): which sequences still have a step t
        h = torch.where(running, new, h)
        hs.append(torch.where(running, new, torch.zeros_like(new)))
    return torch.stack(hs, dim=1), h  # (B, T, H), (B, H)


def check_rnn_forward_padded(fn: Callable, trials: int = 8, seed: int = 2024) -> None:
    """Check ``fn(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh) -> (hs, h_last)``.

    The tanh RNN h' = tanh(W_ih x + b_ih + W_hh h + b_hh) over a padded batch, batch first: xs
    (B, T, I), lengths (B,) int64 from 1 to T, h0 (B, H); W_ih (H, I), W_hh (H, H), b_ih and b_hh (H,).
    hs (B, T, H) holds each sequence's states up to its length and zeros after; h_last (B, H) is
    each sequence's state at its own last step. Tried in float32 and float64.
    """
    item = "rnn_forward_padded"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for (B, T, I, H), dtype in zip(_padded_cases(g, trials), _dtypes(trials)):
        randn = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype)  # noqa: E731
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T  # one sequence fills the batch, and (for B > 1) one has a single step
        if B > 1:
            lengths[1] = 1
        args = (randn(B, T, I), lengths, randn(B, H), randn(H, I), randn(H, H), randn(H), randn(H))
        out = call(item, fn, *(a.clone() for a in args))
        expected_hs, expected_last = rnn_padded_reference(*args)
        got_hs, got_last = guard_tuple(item, out, ((B, T, H), (B, H)), dtype, names=("hs", "h_last"))
        what = f"for B={B}, T={T}, I={I}, H={H}, lengths={lengths.tolist()} ({dtype})"
        close(item, got_hs, expected_hs, what=f"hs {what}")
        close(item, got_last, expected_last, what=f"h_last {what}")


# ------------------------------------------------------------------------------ 2. BPTT through a read-out

READOUT_KEYS = ("W_xh", "W_hh", "b", "W_hy", "b_y", "h0")


def _readout_case(rng: np.random.Generator, B: int, T: int, I: int, H: int, O: int, dtype):
    params = {"W_xh": rng.normal(0, 0.6, (H, I)), "W_hh": rng.normal(0, 0.5, (H, H)), "b": rng.normal(0, 0.2, H),
              "W_hy": rng.normal(0, 0.6, (O, H)), "b_y": rng.normal(0, 0.2, O)}
    params = {k: v.astype(dtype) for k, v in params.items()}
    return params, rng.normal(size=(B, T, I)).astype(dtype), rng.normal(size=(B, T, O)).astype(dtype), \
        rng.normal(size=(B, H)).astype(dtype)


def readout_reference(params: dict, xs, ys, h0) -> tuple[float, dict]:
    """The loss and its gradients by torch's autograd in float64 (the reference, never shown to
    student code)."""
    leaves = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in {**params, "h0": h0}.items()}
    x, y = torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)
    h, loss = leaves["h0"], 0.0
    for t in range(x.shape[1]):
        h = torch.tanh(x[:, t] @ leaves["W_xh"].T + h @ leaves["W_hh"].T + leaves["b"])  # (B, H)
        y_hat = h @ leaves["W_hy"].T + leaves["b_y"]  # (B, O)
        loss = loss + 0.5 * ((y_hat - y[:, t]) ** 2).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return float(loss.detach()), {k: g.numpy() for k, g in zip(leaves, grads)}


def check_bptt_with_readout(fn: Callable, trials: int = 6, seed: int = 7) -> None:
    """Check ``fn(params, xs, ys, h0) -> (loss, grads)``, in NumPy.

    params: W_xh (H, I), W_hh (H, H), b (H,), W_hy (O, H), b_y (O,); xs (B, T, I), ys (B, T, O),
    h0 (B, H). The network: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b), y_hat_t = W_hy h_t + b_y, and
    L = 1/2 sum over the batch and the steps of |y_hat_t - y_t|^2. loss is L (a float); grads a
    dict with the keys W_xh, W_hh, b, W_hy, b_y and h0, each an array shaped like its parameter with
    the inputs' dtype. Tried in float64 and float32; the inputs must not be changed.
    """
    item = "bptt_with_readout"
    rng = np.random.default_rng(item_seed(item, seed))
    sizes = [(1, 1, 1, 1, 1), (3, 4, 2, 5, 2)]
    sizes += [tuple(int(v) for v in rng.integers(1, 6, size=5)) for _ in range(trials)]
    for k, (B, T, I, H, O) in enumerate(sizes[:trials]):
        dtype = np.float32 if k % 2 else np.float64
        params, xs, ys, h0 = _readout_case(rng, B, T, I, H, O, dtype)
        originals = [{n: v.copy() for n, v in params.items()}, xs.copy(), ys.copy(), h0.copy()]
        out = call(item, fn, params, xs, ys, h0)
        if not all(np.array_equal(a, b) for a, b in zip((*params.values(), xs, ys, h0),
                                                       (*originals[0].values(), *originals[1:]))):
            fail(item, "an input array was changed in place; compute into new arrays instead")
        loss, grads = readout_reference(*originals)
        tol = {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-7, "atol": 1e-9}
        what = f"for B={B}, T={T}, I={I}, H={H}, O={O} ({np.dtype(dtype)})"
        got_loss, got = _guard_loss_and_grads(item, out)
        close(item, torch.tensor(got_loss, dtype=torch.float64), torch.tensor(loss, dtype=torch.float64),
              what=f"loss {what}", **tol)
        for name in READOUT_KEYS:
            expected = grads[name].astype(dtype)
            guard_array(f"{item}['{name}']", got[name], expected.shape, expected.dtype)
            close(item, got[name], expected, what=f"gradient {name} {what}", **tol)


def _guard_loss_and_grads(item: str, out) -> tuple[float, dict]:
    if not isinstance(out, tuple) or tuple.__len__(out) != 2:
        fail(item, f"expected a tuple (loss, grads), got {type(out).__name__}")
    loss, grads = tuple.__getitem__(out, 0), tuple.__getitem__(out, 1)
    if type(loss) is not float and not isinstance(loss, np.floating):
        fail(item, f"expected the loss as a float, got {type(loss).__name__}")
    if type(grads) is not dict or set(grads) != set(READOUT_KEYS):
        keys = sorted(map(str, grads)) if type(grads) is dict else type(grads).__name__
        fail(item, f"expected a dict of gradients with the keys {sorted(READOUT_KEYS)}, got {keys}")
    return float(loss), grads


# ------------------------------------------------------------------------------ 3. clipping in place

def _clip_case(g: torch.Generator, k: int, dtype: torch.dtype):
    """A list of gradients of random shapes, one of them None; every third case all zero."""
    n = int(torch.randint(1, 5, (), generator=g))
    grads = [3 * torch.randn(*[int(d) for d in torch.randint(1, 5, (int(torch.randint(1, 3, (), generator=g)),),
                                                              generator=g)], generator=g, dtype=dtype)
             for _ in range(n)]
    if k % 3 == 2:
        grads = [torch.zeros_like(t) for t in grads]
    grads.insert(int(torch.randint(0, n + 1, (), generator=g)), None)  # a parameter without a gradient
    return grads


def check_clip_grads_(fn: Callable, trials: int = 9, seed: int = 11) -> None:
    """Check ``fn(grads, max_norm) -> total_norm``: clipping by the global norm, in place.

    grads is a list of tensors (float32 or float64), some entries None (parameters without a
    gradient, to be skipped). total_norm, a float, is the L2 norm of all their entries together
    before clipping; when it exceeds max_norm, every tensor is multiplied in place by
    max_norm / total_norm, otherwise left as it is. All-zero gradients stay zero (no NaN).
    """
    item = "clip_grads_"
    g = torch.Generator().manual_seed(item_seed(item, seed))
    for k, dtype in enumerate(_dtypes(trials)):
        grads = _clip_case(g, k, dtype)
        tensors = [t for t in grads if t is not None]
        norm = float(torch.sqrt(sum((t.double() ** 2).sum() for t in tensors)))
        max_norm = norm * 0.3 if k % 3 == 0 else (norm * 2.0 + 1.0 if k % 3 == 1 else 1.0)
        originals = [t.clone() for t in tensors]
        out = call(item, fn, grads, max_norm)
        if type(out) is not float and not isinstance(out, np.floating) and not (
                type(out) is torch.Tensor and out.dim() == 0):
            fail(item, f"expected the total norm as a float, got {type(out).__name__}")
        close(item, torch.tensor(float(out), dtype=torch.float64), torch.tensor(norm, dtype=torch.float64),
              what=f"total norm (before clipping) of {len(tensors)} gradients")
        scale = min(1.0, max_norm / norm) if norm > 0 else 1.0
        for i, (t, before) in enumerate(zip(tensors, originals)):  # (torch's own adds 1e-6 to the norm)
            close(item, t, before * scale, what=f"gradient {i} after clipping to max_norm {max_norm:.3g} "
                                                f"(in place, {dtype})", rtol=1e-5, atol=1e-7)

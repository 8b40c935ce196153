r"""Backpropagation through time (BPTT) for the tanh RNN, in NumPy, without autograd.

Unfold the RNN over T steps and it is a very deep network whose layers all share one set of
weights. The forward pass computes, for t = 1, ..., T,

.. math::

    z_t = W_{xh} x_t + W_{hh} h_{t-1} + b, \qquad h_t = \tanh(z_t)

and the backward pass is the lecture's backpropagation, run from the last step to the first. The
error signal of step t is δ_t = ∂L/∂z_t. Step t receives dL/dh_t from two places: the loss directly
(``dhs``), and step t + 1 through W_hh. Hence

.. math::

    \delta_t = \sigma'(z_t) \odot \Big( \frac{\partial L}{\partial h_t}\Big|_{\text{direct}}
               + W_{hh}^\top \delta_{t+1} \Big), \qquad \sigma'(z_t) = 1 - h_t^2

which is the slide's δ^l = σ'(z^l) ⊙ (W^{l+1})^T δ^{l+1} with the layer index read as time. A
shared weight's gradient is the sum of its gradients at every step (the slide's "w_1 and w_2 are the
same pointer"): ∂L/∂W_hh = Σ_t δ_t h_{t-1}^T, ∂L/∂W_xh = Σ_t δ_t x_t^T, ∂L/∂b = Σ_t δ_t.

Truncated BPTT (Williams and Peng 1990, BPTT(k) with k1 = 1, k2 = k) carries each step's error
signal back at most k steps; ``backward(..., truncate=k)``. ``gradient_norms`` shows why one might:
δ is multiplied by diag(σ') W_hh^T at every step back, so its norm shrinks or grows geometrically
(vanishing or exploding gradients). ``clip_grad_norm`` is the remedy for the second.

BPTT needs every state of the forward pass when it runs backwards: its memory grows linearly with
T. ``forward``'s cache holds exactly h_0, ..., h_T and x_1, ..., x_T; for a torch model,
``saved_tensor_bytes`` counts what autograd keeps for the backward pass (chapter 2's table).

Two measurements of torch models complete the NumPy ones: ``state_gradient_norms(cell, xs)`` is
``gradient_norms`` for any cell of the library, by autograd (how far back each part of a state
hears a loss at the last step: chapter 2's remedies, chapter 3's gating), and
``saved_tensor_bytes``. Truncated BPTT in training is ``seqmem.fit``'s strategy
``seqmem.TruncatedBPTT(k)``.

Dimensions: T time, B batch, I input size, H hidden size. The NumPy arrays are time first, as the
equations index them (``xs[t - 1]`` is x_t): the one exception to the library's batch-first rule,
kept because it is the array layout of homework 1. Python counts from 0, the lecture from 1: the
cache's ``h[t]`` is h_t with ``h[0]`` = h_0, the initial state.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .core import map_state

__all__ = ["forward", "backward", "clip_grad_norm", "gradient_norms", "state_gradient_norms", "saved_tensor_bytes",
           "PARAM_NAMES"]

#: The keys of ``params``: W_xh (H, I), W_hh (H, H), b (H,).
PARAM_NAMES = ("W_xh", "W_hh", "b")
_DTYPES = (np.float32, np.float64)


def _array(a, name: str, dims: str, shape: tuple) -> np.ndarray:
    """Check that ``a`` is an array of shape ``shape`` (ints, or None where any size will do)."""
    sizes = ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "")
    want = f"{dims} = ({sizes})"
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array of shape {want}, got {type(a).__name__}")
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    return a


def _unpack(params: dict):
    """Check ``params`` and return (W_xh, W_hh, b); all must share one float dtype."""
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict with keys {PARAM_NAMES}, got {type(params).__name__}")
    missing = [k for k in PARAM_NAMES if k not in params]
    if missing:
        raise ValueError(f"params must have keys {PARAM_NAMES}, missing {missing}")
    W_hh = _array(params["W_hh"], "params['W_hh']", "(H, H)", (None, None))
    H = W_hh.shape[0]
    W_hh = _array(W_hh, "params['W_hh']", "(H, H)", (H, H))
    W_xh = _array(params["W_xh"], "params['W_xh']", "(H, I)", (H, None))
    b = _array(params["b"], "params['b']", "(H,)", (H,))
    return W_xh, W_hh, b


def _same_dtype(**arrays: np.ndarray) -> None:
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) != 1 or next(iter(dtypes.values())) not in _DTYPES:
        raise TypeError(f"params, xs and h0 must share one dtype, float32 or float64; got {dtypes}")


def forward(params: dict, xs: np.ndarray, h0: np.ndarray):
    """Run the tanh RNN over a sequence: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b).

    Args:
        params: ``{"W_xh": (H, I), "W_hh": (H, H), "b": (H,)}``.
        xs: (T, B, I) the inputs x_1, ..., x_T.
        h0: (B, H) the initial state h_0.

    Returns:
        ``(hs, cache)``: hs (T, B, H) the states h_1, ..., h_T, in the dtype of the inputs, and the
        cache ``backward`` needs (the inputs and every state, h_0 included).
    """
    W_xh, W_hh, b = _unpack(params)
    H, I = W_xh.shape
    xs = _array(xs, "xs", "(T, B, I)", (None, None, I))
    T, B, _ = xs.shape
    h0 = _array(h0, "h0", "(B, H)", (B, H))
    _same_dtype(W_xh=W_xh, W_hh=W_hh, b=b, xs=xs, h0=h0)
    h = np.empty((T + 1, B, H), dtype=xs.dtype)  # h[t] = h_t; h[0] = h_0
    h[0] = h0
    for t in range(1, T + 1):
        z = xs[t - 1] @ W_xh.T + h[t - 1] @ W_hh.T + b  # (B, H): z_t, one row per example
        h[t] = np.tanh(z)
    return h[1:], {"xs": xs, "h": h}


def _step_back(W_hh, h_t, dh_t):
    """One step back in time: δ_t = σ'(z_t) ⊙ dL/dh_t, and the signal dL/dh_{t-1} = W_hh^T δ_t."""
    delta = (1.0 - h_t**2) * dh_t  # (B, H); tanh'(z_t) = 1 - h_t^2, so z_t need not be stored
    return delta, delta @ W_hh  # (B, H): row form of W_hh^T δ_t


def _accumulate(grads: dict, delta, x_t, h_prev) -> None:
    # A shared weight's gradient is the sum over steps of its gradient at each step.
    grads["W_xh"] += delta.T @ x_t  # (H, I): Σ_batch δ_t x_t^T
    grads["W_hh"] += delta.T @ h_prev  # (H, H): Σ_batch δ_t h_{t-1}^T
    grads["b"] += delta.sum(axis=0)  # (H,)


def _states(cache) -> tuple:
    """The inputs (T, B, I) and the states h_0, ..., h_T (T + 1, B, H) that ``forward`` cached."""
    if not isinstance(cache, dict) or not {"xs", "h"} <= set(cache):
        raise ValueError("cache must be the dict that forward returned, with keys 'xs' and 'h'")
    return cache["xs"], cache["h"]


def _check_backward(params, cache, dhs):
    _, W_hh, _ = _unpack(params)
    xs, h = _states(cache)
    T, B, H = h.shape[0] - 1, h.shape[1], W_hh.shape[0]
    dhs = _array(dhs, "dhs", "(T, B, H)", (T, B, H))  # one signal per state h_1, ..., h_T
    if dhs.dtype != h.dtype:
        raise TypeError(f"dhs must have the dtype of hs, {h.dtype}; got {dhs.dtype}")
    return W_hh, xs, h, dhs


def backward(params: dict, cache: dict, dhs: np.ndarray, truncate: int | None = None) -> dict:
    """Backpropagation through time: the gradients of L given ∂L/∂h_t at every step.

    Args:
        params: the dict given to ``forward``.
        cache: what ``forward`` returned with the states.
        dhs: (T, B, H) ∂L/∂h_t from the loss directly at each step t (zeros where a step has no
            loss), not counting the path through later steps: that one is BPTT's job.
        truncate: ``None`` for full BPTT. An int k >= 1 for truncated BPTT(k): the error signal
            that the loss injects at step t flows back through steps t, t - 1, ..., t - k + 1 only;
            h_{t-k} is treated as a constant. The steps t <= k, whose window starts at h_0, still
            send their signal to ∂L/∂h_0. Any k >= T gives full BPTT.

    Returns:
        ``{"W_xh": (H, I), "W_hh": (H, H), "b": (H,), "h0": (B, H)}``, in the dtype of the inputs.
    """
    W_hh, xs, h, dhs = _check_backward(params, cache, dhs)
    if truncate is not None and (not isinstance(truncate, (int, np.integer)) or truncate < 1):
        raise ValueError(f"truncate must be None or a positive int, got {truncate!r}")
    grads = {k: np.zeros_like(params[k]) for k in PARAM_NAMES}
    grads["h0"] = np.zeros_like(h[0])
    T = dhs.shape[0]
    if truncate is None or truncate >= T:
        _backward_full(W_hh, xs, h, dhs, grads)
    else:
        _backward_truncated(W_hh, xs, h, dhs, grads, int(truncate))
    return grads


def _backward_full(W_hh, xs, h, dhs, grads) -> None:
    """One sweep from t = T down to 1, the signal from later steps carried along: O(T) work."""
    dh_later = np.zeros_like(h[0])  # W_hh^T δ_{t+1}: nothing comes after step T
    for t in range(dhs.shape[0], 0, -1):
        delta, dh_later = _step_back(W_hh, h[t], dhs[t - 1] + dh_later)
        _accumulate(grads, delta, xs[t - 1], h[t - 1])
    grads["h0"] += dh_later  # what reaches h_0 is W_hh^T δ_1


def _backward_truncated(W_hh, xs, h, dhs, grads, k: int) -> None:
    """Each step's error signal on its own, carried k steps back and dropped: O(T k) work."""
    T = dhs.shape[0]
    for t in range(1, T + 1):
        dh = dhs[t - 1]  # the loss's signal at step t; (B, H)
        for s in range(t, max(t - k, 0), -1):  # s = t, ..., max(t - k + 1, 1)
            delta, dh = _step_back(W_hh, h[s], dh)
            _accumulate(grads, delta, xs[s - 1], h[s - 1])
        if t - k <= 0:  # the window reached the first step, so its signal reaches h_0
            grads["h0"] += dh


def gradient_norms(params: dict, cache: dict, dh_T: np.ndarray | None = None) -> np.ndarray:
    """‖∂L/∂h_t‖ for t = 1, ..., T when the loss sits at the last step only (chapter 2's figure).

    Args:
        dh_T: (B, H) ∂L/∂h_T; by default all entries equal with a total norm of 1, so that the
            result reads as the factor by which the error signal shrinks or grows going back.

    Returns:
        (T,) float64: entry t - 1 is the Frobenius norm over (B, H) of ∂L/∂h_t.
    """
    _, W_hh, _ = _unpack(params)
    _, h = _states(cache)
    T, B, H = h.shape[0] - 1, h.shape[1], h.shape[2]
    if dh_T is None:
        dh_T = np.full((B, H), 1.0 / np.sqrt(B * H), dtype=h.dtype)
    dh = _array(dh_T, "dh_T", "(B, H)", (B, H))
    norms = np.empty(T)
    for t in range(T, 0, -1):
        norms[t - 1] = np.linalg.norm(dh)
        _, dh = _step_back(W_hh, h[t], dh)  # ∂L/∂h_{t-1} = W_hh^T (σ'(z_t) ⊙ ∂L/∂h_t)
    return norms


def state_gradient_norms(cell: Callable, xs: torch.Tensor, state=None):
    """‖∂L/∂s_t‖ for every part of a cell's state, when the loss sits at the last step (by autograd).

    Runs ``cell`` over xs (B, T, I) from ``state`` (its zero state when None) and puts a unit
    signal on the first part of the last state (h_T; an RNN's only part): L = <h_T, u> with every
    entry of u equal and ‖u‖ = 1, as ``gradient_norms`` does. Run it in float64 (``cell.double()``):
    a vanishing gradient underflows float32 long before 100 steps.

    Returns:
        the state's structure with a NumPy array (T,) in place of each part: entry t - 1 is the
        Frobenius norm over the batch of ∂L/∂(that part at step t). A part that L does not depend
        on (FGR's last gates) has norm 0.
    """
    if not isinstance(xs, torch.Tensor) or xs.dim() != 3:
        raise ValueError(f"xs must have shape (B, T, I), got {tuple(xs.shape) if isinstance(xs, torch.Tensor) else xs!r}")
    state = cell.initial_state(xs.shape[0]) if state is None else state
    states = []
    for x in xs.unbind(1):  # (B, I): one step
        state, _ = cell(state, x)
        map_state(lambda part: part.retain_grad() if part.requires_grad else None, state)  # keep ∂L/∂s_t
        states.append(state)
    h_T = states[-1] if isinstance(states[-1], torch.Tensor) else states[-1][0]
    h_T.backward(torch.full_like(h_T, h_T.numel() ** -0.5))

    def norms(*parts):  # one part's tensors at steps 1 ... T -> (T,)
        return np.array([0.0 if p.grad is None else p.grad.norm().item() for p in parts])

    return map_state(norms, *states)


def clip_grad_norm(grads: dict, max_norm: float):
    """Rescale all gradients together so that their total norm is at most ``max_norm``.

    The total norm is the 2-norm of all entries of all arrays, as if concatenated; when it exceeds
    ``max_norm`` every array is multiplied by max_norm / norm, so the direction is kept. This is
    ``torch.nn.utils.clip_grad_norm_`` (up to torch's 1e-6 in the denominator), without the
    in-place update. Every array in ``grads`` counts: drop ``"h0"`` first to clip parameters only.

    Returns:
        ``(clipped, norm)``: a new dict of arrays (dtypes kept) and the total norm before clipping.
    """
    if not isinstance(max_norm, (int, float, np.number)) or not max_norm > 0:
        raise ValueError(f"max_norm must be a positive number, got {max_norm!r}")
    norm = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads.values())))
    scale = float(max_norm) / max(norm, float(max_norm))  # 1 when already short enough
    # A Python float keeps each array's dtype (an np.float64 would promote float32 arrays).
    return {k: g * scale for k, g in grads.items()}, norm


def saved_tensor_bytes(fn: Callable, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` and count the bytes autograd keeps for the backward pass.

    Every tensor an operation saves for backward passes through
    ``torch.autograd.graph.saved_tensors_hooks``. Each storage is counted once, whole: a state
    saved by two operations (the tanh that made it and the matmul that reads it) costs its memory
    once. Under ``torch.no_grad()`` nothing is saved and the count is 0.

    Returns:
        ``(result, nbytes)``: what ``fn`` returned (its graph intact, so ``backward`` still works)
        and the number of bytes saved for backward.
    """
    if not callable(fn):
        raise TypeError(f"saved_tensor_bytes expects a function to run, got {type(fn).__name__}")
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()  # kept alive by the graph: no reuse
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = fn(*args, **kwargs)
    return result, sum(storages.values())

"""The checks that homework tests call.

Each ``check_*`` function runs a student's function on fresh, seeded random inputs and compares its
result with the library's reference using ``torch.testing.assert_close``. Before comparing, a type
guard makes sure the result really is a tensor (or array) of the expected shape and dtype, so an
object whose ``__eq__`` always answers True gains nothing. While the student's function runs, the
library's own implementation of the item (and torch's, where one exists) is blocked: a solution that
merely calls it fails with a message saying so.

A failed check raises ``AssertionError`` (nbgrader then gives zero points for the cell) with a
message that says what was expected and what came.
"""
from __future__ import annotations

import contextlib
import types
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = ["ReferenceBlocked", "blocked", "check_rnn_cell_forward", "check_bptt_backward",
           "check_clip_grad_norm"]


class ReferenceBlocked(RuntimeError):
    """Raised when graded code calls the implementation it was asked to write."""


def _raise_blocked(*args, **kwargs):
    raise ReferenceBlocked("this item asks you to write it yourself: the library's (and torch's) "
                           "implementation is not available while it is graded")


@contextlib.contextmanager
def blocked(*targets: Any) -> Iterator[None]:
    """Make ``targets`` raise ``ReferenceBlocked`` inside the ``with`` block, then restore them.

    A target is a plain Python function (its code is swapped, so every reference to it is blocked,
    however it was imported), or a pair ``(owner, "name")`` whose attribute is replaced (a class's
    ``forward`` method, a module's function).
    """
    restore = []
    try:
        for target in targets:
            if isinstance(target, types.FunctionType):
                restore.append((target, "__code__", target.__code__))
                target.__code__ = _raise_blocked.__code__
            else:
                owner, name = target
                restore.append((owner, name, getattr(owner, name)))
                setattr(owner, name, _raise_blocked)
        yield
    finally:
        for owner, name, original in reversed(restore):
            setattr(owner, name, original)


def _fail(item: str, message: str):
    raise AssertionError(f"{item}: {message}")


def _guard_tensor(item: str, out: Any, shape: tuple, dtype: torch.dtype) -> None:
    """The type guard: exactly a torch.Tensor (not a look-alike) of the right shape and dtype."""
    if type(out) is not torch.Tensor:
        _fail(item, f"expected a torch.Tensor of shape {shape}, got {type(out).__name__}")
    if tuple(out.shape) != shape:
        _fail(item, f"expected shape {shape}, got {tuple(out.shape)}")
    if out.dtype != dtype:
        _fail(item, f"expected dtype {dtype} (the inputs' dtype), got {out.dtype}")


def _guard_array(item: str, out: Any, shape: tuple, dtype) -> None:
    if type(out) is not np.ndarray:
        _fail(item, f"expected a numpy.ndarray of shape {shape}, got {type(out).__name__}")
    if out.shape != shape:
        _fail(item, f"expected shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        _fail(item, f"expected dtype {np.dtype(dtype)} (the inputs' dtype), got {out.dtype}")


def _close(item: str, actual, expected, what: str = "result", **tol) -> None:
    try:
        torch.testing.assert_close(actual, expected, **tol)
    except AssertionError as err:
        _fail(item, f"the {what} differs from the reference on random inputs:\n{err}")


def _call(item: str, fn: Callable, *args):
    """Call the student's function with the references blocked; report errors by name."""
    from . import bptt, rnn

    with blocked(rnn.rnn_step, bptt.forward, bptt.backward, bptt.clip_grad_norm,
                 (rnn.RNNCell, "forward"), (rnn.NaiveRNNCell, "forward"), (rnn.RNN, "forward"),
                 (torch.nn.RNNCell, "forward"), (torch.nn.RNN, "forward"),
                 (torch, "rnn_tanh_cell"), (torch.nn.utils, "clip_grad_norm_")):
        try:
            return fn(*args)
        except ReferenceBlocked:
            raise
        except Exception as err:  # report the student's error with the item's name
            raise AssertionError(f"{item}: your function raised {type(err).__name__}: {err}") from err


def _shapes(rng: np.random.Generator, trials: int) -> list[tuple[int, int, int, int]]:
    """Fresh (T, B, I, H) shapes, including the edge cases T = 1 and B = 1."""
    sizes = [(1, 1, 1, 1), (1, 3, 2, 4)]
    sizes += [tuple(int(v) for v in rng.integers(1, 7, size=4)) for _ in range(max(trials - 2, 0))]
    return sizes[:trials]


def check_rnn_cell_forward(fn: Callable, trials: int = 6, seed: int = 2024) -> None:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h'`` with h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Shapes: x (B, I), h (B, H), W_ih (H, I), W_hh (H, H), b_ih and b_hh (H,); h' (B, H). Tried in
    float32 and float64.
    """
    from .rnn import rnn_step

    item = "rnn_cell_forward"
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    for k, (_, B, I, H) in enumerate(_shapes(rng, trials)):
        dtype = torch.float64 if k % 2 else torch.float32
        x, h = torch.randn(B, I, generator=g, dtype=dtype), torch.randn(B, H, generator=g, dtype=dtype)
        W_ih, W_hh = torch.randn(H, I, generator=g, dtype=dtype), torch.randn(H, H, generator=g, dtype=dtype)
        b_ih, b_hh = torch.randn(H, generator=g, dtype=dtype), torch.randn(H, generator=g, dtype=dtype)
        expected = rnn_step(x, h, W_ih, W_hh, b_ih, b_hh)
        out = _call(item, fn, x.clone(), h.clone(), W_ih.clone(), W_hh.clone(), b_ih.clone(), b_hh.clone())
        _guard_tensor(item, out, (B, H), dtype)
        _close(item, out.detach(), expected, what=f"h' for B={B}, I={I}, H={H}")


def _random_rnn(rng: np.random.Generator, T: int, B: int, I: int, H: int, dtype=np.float64):
    params = {"W_xh": rng.normal(0, 0.6, (H, I)), "W_hh": rng.normal(0, 0.6, (H, H)), "b": rng.normal(0, 0.2, H)}
    params = {k: v.astype(dtype) for k, v in params.items()}
    xs, h0 = rng.normal(size=(T, B, I)).astype(dtype), rng.normal(size=(B, H)).astype(dtype)
    dhs = rng.normal(size=(T, B, H)).astype(dtype)
    return params, xs, h0, dhs


def check_bptt_backward(fn: Callable, trials: int = 6, seed: int = 7) -> None:
    """Check ``fn(params, cache, dhs) -> grads`` against ``seqmem.bptt.backward``.

    ``params`` and ``cache`` come from ``seqmem.bptt.forward(params, xs, h0)``; ``grads`` must be a
    dict with the keys ``W_xh``, ``W_hh``, ``b`` and ``h0``, each a NumPy array shaped like its
    parameter (``h0`` like the initial state). The module ``seqmem.bptt`` is unreachable while
    ``fn`` runs.
    """
    from . import bptt

    item = "bptt_backward"
    rng = np.random.default_rng(seed)
    for T, B, I, H in _shapes(rng, trials):
        params, xs, h0, dhs = _random_rnn(rng, T, B, I, H)
        _, cache = bptt.forward(params, xs, h0)
        expected = bptt.backward(params, cache, dhs)
        got = _call(item, fn, {k: v.copy() for k, v in params.items()}, _copy_cache(cache), dhs.copy())
        if type(got) is not dict:
            _fail(item, f"expected a dict of gradients with keys {sorted(expected)}, got {type(got).__name__}")
        if set(got) != set(expected):
            _fail(item, f"expected the keys {sorted(expected)}, got {sorted(map(str, got))}")
        for name, value in expected.items():
            _guard_array(f"{item}['{name}']", got[name], value.shape, value.dtype)
            _close(item, got[name], value, what=f"gradient {name} for T={T}, B={B}, I={I}, H={H}",
                   rtol=1e-7, atol=1e-9)


def _copy_cache(cache):
    """A deep copy of the forward pass's cache, so a student's in-place edits cannot leak back."""
    if isinstance(cache, dict):
        return {k: _copy_cache(v) for k, v in cache.items()}
    if isinstance(cache, (list, tuple)):
        return type(cache)(_copy_cache(v) for v in cache)
    return cache.copy() if isinstance(cache, np.ndarray) else cache


def check_clip_grad_norm(fn: Callable, trials: int = 6, seed: int = 11) -> None:
    """Check ``fn(grads, max_norm) -> clipped`` against ``seqmem.bptt.clip_grad_norm``.

    ``grads`` is a dict of NumPy arrays; ``clipped`` must be a new dict with the same keys, where
    every array is scaled by ``max_norm / total_norm`` when the total (global L2) norm of all the
    arrays exceeds ``max_norm``, and left unchanged otherwise. The input dict must not be modified.
    """
    from . import bptt

    item = "clip_grad_norm"
    rng = np.random.default_rng(seed)
    for k in range(trials):
        grads = {f"g{i}": rng.normal(0, 3, size=tuple(rng.integers(1, 5, size=rng.integers(1, 3))))
                 for i in range(int(rng.integers(1, 4)))}
        norm = float(np.sqrt(sum((g ** 2).sum() for g in grads.values())))
        max_norm = norm * (0.3 if k % 2 == 0 else 2.0)  # half the trials clip, half do not
        expected, _ = bptt.clip_grad_norm(grads, max_norm)
        originals = {n: g.copy() for n, g in grads.items()}
        got = _call(item, fn, grads, max_norm)
        for n in grads:
            if not np.array_equal(grads[n], originals[n]):
                _fail(item, f"the input array '{n}' was modified in place; return new arrays instead")
        if type(got) is not dict or set(got) != set(expected):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            _fail(item, f"expected a dict with the keys {sorted(expected)}, got {keys}")
        for n, value in expected.items():
            _guard_array(f"{item}['{n}']", got[n], value.shape, value.dtype)
            _close(item, got[n], value, what=f"clipped gradient '{n}' (max_norm {max_norm:.3g})")

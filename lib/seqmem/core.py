"""The pieces every chapter uses: where to compute, how to seed, how to check shapes, how to train.

- ``device()`` picks the accelerator once per notebook (cuda, then mps, then cpu).
- ``seed(n)`` makes a run repeatable.
- ``check_shape(x, spec)`` turns a wrong shape into a ``ValueError`` that says what was expected.
- ``unroll(cell, xs, state)`` applies any cell of the library along the time axis.
- ``fit(model, batches, loss_fn, ...)`` is the one training loop of the course; it returns a history.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

__all__ = ["device", "seed", "check_shape", "unroll", "fit", "History"]

_KNOWN_DEVICES = ("cpu", "cuda", "mps")


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def device() -> torch.device:
    """The device a notebook should compute on: cuda, then mps, then cpu.

    The environment variable ``SEQMEM_DEVICE`` overrides the choice (``cpu``, ``cuda``, ``cuda:1``,
    ``mps``). A value that names no known device, or a device this machine lacks, raises a
    ``RuntimeError`` rather than silently falling back to the CPU.
    """
    wanted = os.environ.get("SEQMEM_DEVICE", "").strip()
    if not wanted:
        for kind in ("cuda", "mps"):
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    kind = wanted.split(":", 1)[0].lower()
    if kind not in _KNOWN_DEVICES:
        raise RuntimeError(
            f"SEQMEM_DEVICE={wanted!r} is not a device seqmem knows; expected one of "
            f"{', '.join(_KNOWN_DEVICES)} (cuda may carry an index, as in 'cuda:1')"
        )
    if not _available(kind):
        raise RuntimeError(
            f"SEQMEM_DEVICE={wanted!r} asks for {kind}, which this machine does not have; "
            "unset SEQMEM_DEVICE to choose automatically"
        )
    try:
        dev = torch.device(wanted.lower())
    except RuntimeError as err:  # e.g. 'cuda:x'
        raise RuntimeError(f"SEQMEM_DEVICE={wanted!r} is not a valid device string: {err}") from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(
            f"SEQMEM_DEVICE={wanted!r} names GPU {dev.index}, but this machine has "
            f"{torch.cuda.device_count()} GPU(s)"
        )
    return dev


def seed(n: int) -> torch.Generator:
    """Seed Python's, NumPy's and torch's global generators with ``n``.

    Returns a fresh CPU ``torch.Generator`` seeded with ``n`` as well, for code that prefers an
    explicit generator (every task in ``seqmem.tasks`` takes one).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"seed expects an int, got {type(n).__name__}")
    random.seed(int(n))
    np.random.seed(int(n) % 2**32)
    torch.manual_seed(int(n))
    return torch.Generator().manual_seed(int(n))


def check_shape(x: torch.Tensor, spec: Sequence[int | str | None], name: str = "input") -> dict:
    """Check that ``x`` has the shape ``spec`` and return the sizes bound to named dimensions.

    ``spec`` holds one entry per dimension: an int must match exactly, a string names a dimension
    (the same name twice must bind the same size), ``None`` accepts any size. For example
    ``check_shape(x, ("B", "T", 3))`` accepts any (B, T, 3) tensor and returns ``{"B": ..., "T": ...}``.
    A mismatch raises a ``ValueError`` that shows the expected and the actual shape.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {_show(spec)}, got {type(x).__name__}")
    shape = tuple(x.shape)
    expected = _show(spec)
    if len(shape) != len(spec):
        raise ValueError(f"{name} must have shape {expected} ({len(spec)} dims), got {shape}")
    bound: dict = {}
    for dim, (want, got) in enumerate(zip(spec, shape)):
        if want is None:
            continue
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                raise ValueError(
                    f"{name} must have shape {expected}, got {shape}: "
                    f"dimension {want} is {bound[want]} elsewhere but {got} at position {dim}"
                )
        elif want != got:
            raise ValueError(f"{name} must have shape {expected}, got {shape} (dimension {dim} differs)")
    return bound


def _show(spec: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in spec) + ")"


def unroll(cell: Callable, xs: torch.Tensor, state=None):
    """Apply a cell along time: the lecture's one function f, used at every step.

    Args:
        cell: any module with ``state, y = cell(state, x)`` and ``cell.initial_state(B)``.
        xs: (T, B, I) inputs, time first.
        state: the initial state; ``cell.initial_state(B)`` when ``None``.

    Returns:
        ``(ys, state)``: ys stacked along time, (T, B, ...), and the final state.
    """
    if not isinstance(xs, torch.Tensor) or xs.dim() < 2:
        got = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
        raise ValueError(f"unroll expects xs of shape (T, B, ...), got {got}")
    if state is None:
        state = cell.initial_state(xs.shape[1])
    ys = []
    for x in xs:  # x: (B, I), one time step
        state, y = cell(state, x)
        ys.append(y)
    return torch.stack(ys), state  # (T, B, ...)


@dataclass
class History:
    """What ``fit`` records: the training loss of every step, and any evaluations."""

    loss: list = field(default_factory=list)
    evals: list = field(default_factory=list)  # (step, value) pairs

    def smoothed(self, window: int = 20) -> np.ndarray:
        """A moving average of the loss, for a readable curve."""
        x = np.asarray(self.loss, dtype=float)
        if len(x) < window:
            return x
        return np.convolve(x, np.ones(window) / window, mode="valid")


def _progress(total: int | None, enabled: bool):
    # tqdm.auto draws the notebook widget in Jupyter and a text bar in a terminal.
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, leave=False)


def fit(
    model: torch.nn.Module,
    batches: Callable[[int], tuple] | Iterable[tuple],
    loss_fn: Callable,
    *,
    steps: int | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    clip_grad_norm: float | None = None,
    evaluate: Callable[[], float] | None = None,
    eval_every: int = 100,
    progress: bool = True,
    truncate: int | None = None,
) -> History:
    """Train ``model`` and return its loss history.

    Args:
        model: the module to train (its parameters are optimised).
        batches: either a function ``step -> (inputs, targets)`` (fresh synthetic data per step, as
            the tasks give) or an iterable of ``(inputs, targets)`` pairs.
        loss_fn: ``loss_fn(model, inputs, targets) -> scalar tensor``; the loss is the caller's so
            that any output shape works.
        steps: how many optimisation steps; required when ``batches`` is a function.
        optimizer: defaults to Adam with learning rate ``lr``.
        clip_grad_norm: if given, the gradient's total norm is clipped to this value (chapter 2).
        evaluate: an optional function called every ``eval_every`` steps; its value is recorded.
        progress: draw a tqdm bar (the notebook flavour in Jupyter).
        truncate: truncated BPTT (chapter 2). Inputs and targets are then batch first, (B, T, ...),
            and are cut along time into consecutive chunks of ``truncate`` steps (the last may be
            shorter). ``loss_fn(model, x_chunk, y_chunk, state) -> (loss, state)`` is called once
            per chunk, with ``state=None`` for a batch's first chunk; each chunk takes one
            optimizer step and records its own loss. The state is detached between chunks, so
            gradients flow back at most ``truncate`` steps while the state itself carries on.
            ``steps``, ``eval_every`` and the bar still count batches.
    """
    if callable(batches) and steps is None:
        raise ValueError("fit: steps must be given when batches is a function of the step")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"fit: steps must be a positive int, got {steps!r}")
    if truncate is not None and (not isinstance(truncate, int) or isinstance(truncate, bool) or truncate < 1):
        raise ValueError(f"fit: truncate must be None or a positive int, got {truncate!r}")
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    source = (batches(i) for i in range(steps)) if callable(batches) else iter(batches)
    history = History()
    model.train()
    with _progress(steps, progress) as bar:
        for step, (inputs, targets) in enumerate(source):
            if steps is not None and step >= steps:
                break
            if truncate is None:
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model, inputs, targets)
                history.loss.append(_optimizer_step(model, optimizer, loss, clip_grad_norm))
            else:
                history.loss += _fit_truncated(model, optimizer, loss_fn, inputs, targets, truncate,
                                               clip_grad_norm)
            if evaluate is not None and (step + 1) % eval_every == 0:
                model.eval()
                with torch.no_grad():
                    history.evals.append((step + 1, float(evaluate())))
                model.train()
            bar.update(1)
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}")
    model.eval()
    return history


def _optimizer_step(model: torch.nn.Module, optimizer, loss: torch.Tensor, clip_grad_norm) -> float:
    """Backpropagate ``loss``, clip if asked, take one optimizer step; return the loss's value."""
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"fit: loss_fn must return a scalar, got shape {got}")
    loss.backward()
    if clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return loss.item()


def _check_sequences(inputs, targets) -> None:
    """Truncation cuts along dimension 1: both must be batch-first tensors of one (B, T)."""
    for name, t in (("inputs", inputs), ("targets", targets)):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"fit(truncate=...): {name} must be a batch-first tensor (B, T, ...), got {got}")
    if inputs.shape[:2] != targets.shape[:2]:
        raise ValueError(f"fit(truncate=...): inputs and targets must share (B, T), got "
                         f"{tuple(inputs.shape[:2])} and {tuple(targets.shape[:2])}")


def _fit_truncated(model, optimizer, loss_fn, inputs, targets, truncate: int, clip_grad_norm) -> list:
    """Truncated BPTT on one batch: one optimizer step per chunk of ``truncate`` steps; the losses."""
    _check_sequences(inputs, targets)
    losses, state = [], None
    # (B, truncate, ...) chunks along time, consecutive, so the state carries from one to the next
    for x, y in zip(inputs.split(truncate, dim=1), targets.split(truncate, dim=1)):
        optimizer.zero_grad(set_to_none=True)
        out = loss_fn(model, x, y, state)
        if not isinstance(out, tuple) or len(out) != 2:
            raise ValueError("fit(truncate=...): loss_fn(model, x, y, state) must return (loss, state), "
                             f"got {type(out).__name__}")
        loss, state = out
        losses.append(_optimizer_step(model, optimizer, loss, clip_grad_norm))
        state = _detach(state)  # the next chunk starts from this state's value, not its history
    return losses


def _detach(state):
    """Cut a state (a tensor, or a tuple, NamedTuple, list or dict of them) from its graph."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple, e.g. an LSTM's (h, c)
        return type(state)(*(_detach(s) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_detach(s) for s in state)
    if isinstance(state, dict):
        return {k: _detach(v) for k, v in state.items()}
    return state  # None, or anything without a graph

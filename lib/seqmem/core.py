"""The pieces every chapter uses: where to compute, how to seed, how to check shapes, how to train.

- ``device()`` picks the accelerator once per notebook (cuda, then mps, then cpu).
- ``seed(n)`` makes a run repeatable.
- ``check_shape(x, spec)`` turns a wrong shape into a ``ValueError`` that says what was expected.
- ``unroll(cell, xs, state)`` applies any cell of the library along the time axis of a batch-first
  sequence; ``map_state(fn, state, ...)`` applies a function to every tensor of a state, whatever
  its structure (an RNN's tensor, an LSTM's ``(h, c)``, a list of layers' states).
- ``fit(model, batches, loss_fn, ...)`` is the one training loop of the course; it returns a
  history. ``loss_fn(model, batch)`` returns the loss, or ``(loss, logs)`` with a dict of values
  to record and show on the progress bar. ``TruncatedBPTT(k)`` is the strategy of chapter 2: one
  optimizer step per chunk of k steps, the model's state carried from chunk to chunk.
- ``IGNORE_INDEX`` is the label of a step that has none (padding, or a task's unlabelled steps).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["device", "seed", "check_shape", "check_positive_int", "unroll", "map_state", "fit", "History",
           "TruncatedBPTT", "IGNORE_INDEX"]

#: The label of a step that has none: the default ``ignore_index`` of ``torch.nn.functional.cross_entropy``,
#: so such steps drop out of the loss by themselves; the library's accuracies leave them out too.
IGNORE_INDEX = -100

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


def check_positive_int(name: str, value) -> None:
    """Raise a ``ValueError`` unless ``value`` is a positive int (a NumPy int will do; a bool will not)."""
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


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
        xs: (B, T, I) inputs, batch first.
        state: the initial state; ``cell.initial_state(B)`` when ``None``.

    Returns:
        ``(ys, state)``: ys stacked along time, (B, T, ...), and the final state.
    """
    if not isinstance(xs, torch.Tensor) or xs.dim() < 2:
        got = tuple(xs.shape) if isinstance(xs, torch.Tensor) else type(xs).__name__
        raise ValueError(f"unroll expects xs of shape (B, T, ...), got {got}")
    if state is None:
        state = cell.initial_state(xs.shape[0])
    ys = []
    for x in xs.unbind(1):  # x: (B, I), one time step
        state, y = cell(state, x)
        ys.append(y)
    return torch.stack(ys, dim=1), state  # (B, T, ...)


def map_state(fn: Callable, state, *others):
    """Apply ``fn`` to every tensor of a state and rebuild the state's structure.

    A state is a tensor, or a NamedTuple (an ``LSTMState(h, c)``), tuple, list or dict of states;
    anything else (``None``) is returned as it is. With ``others`` (states of the same structure)
    ``fn`` gets the corresponding tensors of all of them. For example:

    - ``map_state(torch.Tensor.detach, state)`` cuts a state from its graph (truncated BPTT);
    - ``map_state(lambda new, old: torch.where(done[:, None], old, new), new, old)`` keeps the old
      state of the examples where ``done`` (B,) is True;
    - ``map_state(lambda *parts: sum(w * p for w, p in zip(weights, parts)), *states)`` is the
      weighted sum of several states (ACT's mean state, a beam's merge).
    """
    if isinstance(state, torch.Tensor):
        return fn(state, *others)
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(map_state(fn, *parts) for parts in zip(state, *others)))
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, *parts) for parts in zip(state, *others))
    if isinstance(state, dict):
        return {k: map_state(fn, v, *(o[k] for o in others)) for k, v in state.items()}
    return state


@dataclass
class History:
    """What ``fit`` records: the training loss of every step, every logged value, and evaluations."""

    loss: list = field(default_factory=list)
    evals: list = field(default_factory=list)  # (step, value) pairs
    logs: dict = field(default_factory=dict)  # name -> one value per optimizer step

    def smoothed(self, window: int = 20) -> np.ndarray:
        """A moving average of the loss, for a readable curve."""
        x = np.asarray(self.loss, dtype=float)
        if len(x) < window:
            return x
        return np.convolve(x, np.ones(window) / window, mode="valid")

    def _record(self, loss: float, logs: dict) -> None:
        self.loss.append(loss)
        for name, value in logs.items():
            self.logs.setdefault(name, []).append(float(value))


def _progress(total: int | None, enabled: bool):
    # tqdm.auto draws the notebook widget in Jupyter and a text bar in a terminal.
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, leave=False)


def _whole_batch(model, batch) -> Iterator[tuple]:
    """fit's default strategy: one optimizer step on the whole batch."""
    yield model, batch


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
    strategy: Callable | None = None,
) -> History:
    """Train ``model`` and return its history.

    Args:
        model: the module to train (its parameters are optimised).
        batches: either a function ``step -> batch`` (fresh synthetic data per step, as the tasks
            give) or an iterable of batches. A batch is whatever ``loss_fn`` reads, usually a pair
            ``(inputs, targets)``.
        loss_fn: ``loss_fn(model, batch)`` returns a scalar loss, or ``(loss, logs)`` with ``logs``
            a dict of numbers (an accuracy, a ponder cost) recorded in ``History.logs`` and shown
            on the progress bar. The loss is the caller's, so that any model and output work.
        steps: how many batches; required when ``batches`` is a function.
        optimizer: defaults to Adam with learning rate ``lr``.
        clip_grad_norm: if given, the gradient's total norm is clipped to this value (chapter 2).
        evaluate: an optional function called every ``eval_every`` batches; its value is recorded.
        progress: draw a tqdm bar (the notebook flavour in Jupyter).
        strategy: how a batch becomes optimizer steps: ``None`` takes one step per batch;
            ``TruncatedBPTT(k)`` one per chunk of k time steps (chapter 2). ``loss_fn`` is the same.
    """
    if callable(batches) and steps is None:
        raise ValueError("fit: steps must be given when batches is a function of the step")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"fit: steps must be a positive int, got {steps!r}")
    strategy = strategy or _whole_batch
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    source = (batches(i) for i in range(steps)) if callable(batches) else iter(batches)
    history = History()
    model.train()
    with _progress(steps, progress) as bar:
        for step, batch in enumerate(source):
            if steps is not None and step >= steps:
                break
            for view, part in strategy(model, batch):  # the model (or a view of it) and the data of one step
                optimizer.zero_grad(set_to_none=True)
                loss, logs = _loss_and_logs(loss_fn(view, part))
                history._record(_optimizer_step(model, optimizer, loss, clip_grad_norm), logs)
            if evaluate is not None and (step + 1) % eval_every == 0:
                model.eval()
                with torch.no_grad():
                    history.evals.append((step + 1, float(evaluate())))
                model.train()
            bar.update(1)
            bar.set_postfix(loss=f"{history.loss[-1]:.4f}", **{k: f"{v[-1]:.4g}" for k, v in history.logs.items()})
    model.eval()
    return history


def _loss_and_logs(out) -> tuple:
    """``loss`` or ``(loss, logs)`` from a loss_fn, as a pair; a ValueError for anything else."""
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[1], dict):
            raise ValueError("fit: loss_fn must return a scalar loss or (loss, logs) with logs a dict, "
                             f"got a tuple of {len(out)}")
        return out
    return out, {}


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


class TruncatedBPTT:
    """fit's strategy for truncated BPTT (chapter 2): chunks of k steps, the state carried over.

    Every tensor of a batch is batch first, (B, T, ...), of one (B, T), and is cut along time into
    consecutive chunks of k steps (the last may be shorter). Each chunk takes one optimizer step
    and records its own loss. ``loss_fn(model, chunk)`` is the same as without truncation: the
    model it gets is a view whose calls ``model(x)`` continue from the state the previous call
    returned (``None``, the zero state, for a batch's first chunk); so the model must return
    ``(output, state)``, as the library's layers and heads do. Between chunks the state is
    detached (``map_state``): gradients flow back at most k steps while the state itself carries on.
    """

    def __init__(self, k: int):
        check_positive_int("TruncatedBPTT: k", k)
        self.k = k

    def __call__(self, model, batch) -> Iterator[tuple]:
        tensors = _sequences(batch)
        view = _Carried(model)
        for chunk in zip(*(t.split(self.k, dim=1) for t in tensors)):  # (B, <= k, ...) each
            yield view, tuple(chunk)
            view.state = map_state(torch.Tensor.detach, view.state)  # after the step: its value, not its history

    def __repr__(self) -> str:
        return f"TruncatedBPTT({self.k})"


def _sequences(batch) -> list:
    """The tensors of a batch that truncation cuts along dimension 1: batch first, one (B, T)."""
    if not isinstance(batch, (tuple, list)) or not batch:
        raise ValueError(f"TruncatedBPTT: a batch must be a tuple of tensors (B, T, ...), got {type(batch).__name__}")
    for n, t in enumerate(batch):
        if not isinstance(t, torch.Tensor) or t.dim() < 2:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"TruncatedBPTT: batch element {n} must be a batch-first tensor (B, T, ...), got {got}")
    for t in batch[1:]:
        if t.shape[:2] != batch[0].shape[:2]:
            raise ValueError(f"TruncatedBPTT: the batch's tensors must share (B, T), got "
                             f"{tuple(batch[0].shape[:2])} and {tuple(t.shape[:2])}")
    return list(batch)


class _Carried:
    """A model whose calls carry the state: ``model(x)`` is ``model(x, state)`` with the last state."""

    def __init__(self, model):
        self.model, self.state = model, None

    def __call__(self, x, *args, **kwargs):
        out = self.model(x, self.state, *args, **kwargs)
        if not isinstance(out, tuple) or len(out) != 2:
            raise ValueError("TruncatedBPTT: the model must return (output, state) so that the state can "
                             f"carry from chunk to chunk, got {type(out).__name__}")
        self.state = out[1]
        return out

    def __getattr__(self, name):
        return getattr(self.model, name)  # the model's parts (model.rnn, ...), for the loss

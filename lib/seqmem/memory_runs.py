r"""Training and testing a network on the memory tasks: the procedure of chapter 8's experiments.

Graves et al. (2014, section 4) train each network on episodes of one range of sizes (copy:
sequences of 1 ... 20 vectors) and test it size by size, beyond the training range, by its cost
in bits; we also count the bit errors of its thresholded outputs (``seqmem.tasks.bit_errors``,
``sequence_cost``), and, our choice, score it every so often on a validation set and keep the
parameters of its best validation. The procedure is the same for every model,
an NTM, a DNC or the paper's LSTM baseline, so it is written once here:

- ``logits(model, inputs)``: a model's logits (B, T, O) for inputs (B, T, I). A cell
  (``seqmem.Cell``: ``NTMCell``, ``DNCCell``, ``LSTMCell``) runs step by step through
  ``seqmem.unroll``; any other module is a sequence model called on the whole batch, returning
  the logits or ``(logits, state)`` (``seqmem.Tagger`` over an ``seqmem.LSTM``).
- ``memory_loss(model, batch)``: ``fit``'s loss, the recall cross-entropy of each episode in
  nats, averaged over the batch; the bit errors per episode are logged beside it.
- ``scores(model, batch)``: the mean cost per episode in bits, the mean bit errors per episode and
  the share of episodes with none (``perfect``).
- ``train_best(model, batches, validation, ...)``: ``seqmem.fit`` with a validation every
  ``eval_every`` steps; the parameters of the lowest validation cost are the ones the model keeps.
  It returns a ``Training``, whose ``fields(model)`` are a results record's fields of the run.
- ``scores_by_size(model, batch_of, sizes)``: the scores of the batch ``batch_of(size)`` for each size.
- ``sequences_to_converge(run, batch_size)``: from a results record's run, the episodes seen
  before its first validation at or below a level of bit errors (the reference implementations
  state convergence in episodes seen).

Every batch is a ``seqmem.tasks.MemoryBatch`` (inputs, targets, mask, ...). Dimensions: B batch,
T steps, I input channels, O output channels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch

from . import tasks
from .cell import Cell
from .core import History, check_positive_int, fit, unroll

__all__ = ["logits", "memory_loss", "scores", "Training", "train_best", "scores_by_size",
           "sequences_to_converge"]


def logits(model, inputs: torch.Tensor) -> torch.Tensor:
    """The logits (B, T, O) of ``model`` for ``inputs`` (B, T, I): a cell unrolled, a sequence model called."""
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3:
        got = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must have shape (B, T, I), got {got}")
    if isinstance(model, Cell):
        ys, _ = unroll(model, inputs)  # (B, T, O), one step at a time
        return ys
    out = model(inputs)  # a sequence model: the whole batch at once
    ys = out[0] if isinstance(out, tuple) else out
    if not isinstance(ys, torch.Tensor) or ys.shape[:2] != inputs.shape[:2]:
        got = tuple(ys.shape) if isinstance(ys, torch.Tensor) else type(ys).__name__
        raise ValueError(f"a sequence model must return logits (B, T, O) = {tuple(inputs.shape[:2])} + (O,), "
                         f"or (logits, state), got {got}")
    return ys


def memory_loss(model, batch: tasks.MemoryBatch):
    """``fit``'s loss: the mean over the batch of each episode's recall cross-entropy (nats), bit errors logged."""
    ys = logits(model, batch.inputs)  # (B, T, O)
    loss = tasks.sequence_cost(ys, batch.targets, batch.mask, bits=False).mean()
    return loss, {"bit_errors": float(tasks.bit_errors(ys.detach(), batch.targets, batch.mask).mean())}


@torch.no_grad()
def scores(model, batch: tasks.MemoryBatch) -> dict:
    """``{"cost_bits": ..., "bit_errors": ..., "perfect": ...}``: the means over the batch's episodes
    (floats); ``perfect`` is the share of episodes with no recall bit wrong."""
    ys = logits(model, batch.inputs)  # (B, T, O)
    errors = tasks.bit_errors(ys, batch.targets, batch.mask)  # (B,)
    return {"cost_bits": float(tasks.sequence_cost(ys, batch.targets, batch.mask).mean()),
            "bit_errors": float(errors.mean()), "perfect": float((errors == 0).float().mean())}


@dataclass
class Training:
    """What ``train_best`` did: fit's history, the validation scores, the best step and the time spent.

    ``validation[k]`` holds the scores (``scores``) after step ``history.evals[k][0]``;
    ``best_step`` is the first step of the lowest validation cost, whose parameters the model
    kept. ``seconds`` is the wall time of the training (validation included), ``cpu_seconds``
    this process's CPU time over it; the record's ``steps_per_second`` is steps over ``seconds``,
    validation included.
    """

    history: History
    validation: list
    best_step: int
    steps: int
    seconds: float
    cpu_seconds: float

    def fields(self, model: torch.nn.Module, points: int = 500) -> dict:
        """The run's fields of a results record: the validation and training curves, the size, the speed.

        The training curves (loss, bit errors) are means over windows of ``steps // points``
        steps (one step when there are fewer than ``points``), at the windows' last steps.
        """
        every = max(1, self.steps // points)
        curve = lambda values: [sum(values[i - every:i]) / every  # noqa: E731
                                for i in range(every, len(values) + 1, every)]
        return {"val_steps": [step for step, _ in self.history.evals],
                "val_cost_bits": [s["cost_bits"] for s in self.validation],
                "val_bit_errors": [s["bit_errors"] for s in self.validation],
                "val_perfect": [s["perfect"] for s in self.validation],
                "best_step": self.best_step,
                "train_steps": list(range(every, self.steps + 1, every)),
                "train_loss": curve(self.history.loss),
                "train_bit_errors": curve(self.history.logs["bit_errors"]),
                "parameters": sum(p.numel() for p in model.parameters()),
                "train_seconds": round(self.seconds, 1), "train_cpu_seconds": round(self.cpu_seconds, 1),
                "steps_per_second": round(self.steps / self.seconds, 3)}


def train_best(model: torch.nn.Module, batches: Callable[[int], tasks.MemoryBatch], validation: tasks.MemoryBatch,
               *, steps: int, optimizer: torch.optim.Optimizer, eval_every: int,
               clip_grad_norm: float | None = None, log: Callable[[str], None] | None = None) -> Training:
    """Train with ``memory_loss``, validate every ``eval_every`` steps, end with the best validated parameters.

    Args:
        model: a cell or a sequence model (``logits``).
        batches: ``step -> MemoryBatch``, a fresh training batch per step (``fit``'s ``batches``).
        validation: the batch scored every ``eval_every`` steps; the lowest cost in bits wins.
        steps: optimizer steps; ``eval_every`` must divide into at least one validation (<= steps).
        optimizer, clip_grad_norm: as ``fit`` takes them (the gradient's total norm clipped).
        log: called with one line per validation (the step, the scores, the seconds so far).
    """
    check_positive_int("steps", steps)
    check_positive_int("eval_every", eval_every)
    if eval_every > steps:
        raise ValueError(f"eval_every ({eval_every}) must be at most steps ({steps}): the run keeps the "
                         "parameters of its best validation, so it needs at least one")
    best, validated = {"cost_bits": float("inf")}, []
    start, cpu = time.perf_counter(), time.process_time()

    def evaluate() -> float:  # the validation cost in bits; the best parameters kept aside
        s = scores(model, validation)
        validated.append(s)
        if log is not None:
            log(f"step {len(validated) * eval_every:>6}: validation cost {s['cost_bits']:8.3f} bits, "
                f"bit errors {s['bit_errors']:7.3f} ({time.perf_counter() - start:.0f} s)")
        if s["cost_bits"] < best["cost_bits"]:  # strictly: the first of equal costs stays
            best.update(s, step=len(validated) * eval_every,
                        state={k: v.clone() for k, v in model.state_dict().items()})
        return s["cost_bits"]

    history = fit(model, batches, memory_loss, steps=steps, optimizer=optimizer, clip_grad_norm=clip_grad_norm,
                  evaluate=evaluate, eval_every=eval_every, progress=False)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    if "state" not in best:  # every validation cost was NaN
        raise ValueError(f"no validation cost was finite ({[s['cost_bits'] for s in validated]}): "
                         "the training diverged")
    model.load_state_dict(best["state"])
    model.eval()
    return Training(history, validated, best["step"], steps, seconds, cpu_seconds)


def scores_by_size(model, batch_of: Callable[[int], tasks.MemoryBatch], sizes: Iterable[int]) -> dict:
    """``{str(size): scores(model, batch_of(size))}`` for each size (the JSON keys of a results file)."""
    return {str(size): scores(model, batch_of(size)) for size in sizes}


def sequences_to_converge(run: dict, batch_size: int, level: float = 0.1) -> int | None:
    """Episodes seen (steps x ``batch_size``) up to the first validation of ``run`` with at most
    ``level`` bit errors per episode, or None if none reached it.

    ``run`` is a record's run (``Training.fields``): its ``val_steps`` and ``val_bit_errors``, one
    per validation. The figure is resolved to one validation interval of episodes.
    """
    check_positive_int("sequences_to_converge: batch_size", batch_size)
    if not isinstance(level, (int, float)) or isinstance(level, bool) or not level >= 0:
        raise ValueError(f"sequences_to_converge: level must be a number >= 0 (bit errors), got {level!r}")
    steps, errors = run.get("val_steps"), run.get("val_bit_errors")
    if not isinstance(steps, list) or not isinstance(errors, list):
        raise ValueError("sequences_to_converge: run must have lists val_steps and val_bit_errors, "
                         f"got {type(steps).__name__} and {type(errors).__name__}")
    if len(steps) != len(errors):
        raise ValueError("sequences_to_converge: val_steps and val_bit_errors must have one length, "
                         f"got {len(steps)} and {len(errors)}")
    first = next((step for step, e in zip(steps, errors) if e <= level), None)
    return None if first is None else first * batch_size

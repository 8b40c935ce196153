"""Benchmark: one training step of ``seqmem.RNN`` against ``torch.nn.RNN``, measured in the same run.

A step is forward, backward and an SGD update, on the same input, from the same weights. Three
contenders per configuration: torch.nn.RNN (the reference), seqmem.RNN (the fused path, the
library's default) and seqmem.RNN(fused=False) (the from-scratch loop the chapter explains). They
take turns, in an order that alternates between rounds, so that a slow moment of the machine
hits all of them; each time is the median of the rounds after a warm-up, and each ratio the median
of the ratios within a round. A time budget per configuration caps the rounds on a slow machine.
On the CPU, with one thread (the default), a step is timed by this process's CPU time, which other
programs on a shared machine do not inflate; on a GPU, by the wall clock after synchronising.

Run:   python bench/bench_rnn.py [--quick] [--threads N]     (--quick: T = 20, a smoke test)

Exits with status 1 when a fused ratio seqmem / torch exceeds 1.2 (the target of the issue); the
reference path is reported, not gated: it is meant to be read, not to be fast.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from typing import Callable

import torch

import seqmem

TARGET = 1.2  # the most seqmem's fused step may cost, as a multiple of torch's

# (name, arguments of the layer, T, B): the chapter's default size, then a deep bidirectional one.
CONFIGS = [
    ("1 layer", dict(input_size=32, hidden_size=128), 100, 32),
    ("2 layers, bidir", dict(input_size=32, hidden_size=128, num_layers=2, bidirectional=True), 100, 32),
]


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)  # kernels run asynchronously: wait before reading the clock


def _train_step(module: torch.nn.Module, x: torch.Tensor, hx):
    """A closure running one forward, backward and SGD step of ``module``."""
    opt = torch.optim.SGD(module.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        y, state = module(x, hx)  # (T, B, D * H), h_n (L * D, B, H) or a tuple of such parts
        parts = state if isinstance(state, tuple) else (state,)
        (y.pow(2).mean() + sum(p.pow(2).mean() for p in parts)).backward()
        opt.step()

    return step


def contenders(reference: type, ours: type, kwargs: dict, T: int, B: int, dev: torch.device,
               state_parts: int = 1) -> dict:
    """torch's layer, ours fused and ours from scratch, with one set of weights, as training steps.

    ``state_parts`` is how many (L * D, B, H) tensors the layer's state has (2 for an LSTM).
    """
    torch.manual_seed(0)
    ref = reference(**kwargs).to(dev)
    layers = {"torch": ref}
    for name, fused in (("seqmem", True), ("reference", False)):
        layers[name] = ours(**kwargs, fused=fused).to(dev)
        layers[name].load_state_dict(ref.state_dict())
    D = 2 if kwargs.get("bidirectional") else 1
    x = torch.randn(T, B, kwargs["input_size"], device=dev)  # (T, B, I)
    zeros = [torch.zeros(kwargs.get("num_layers", 1) * D, B, kwargs["hidden_size"], device=dev)  # (L * D, B, H)
             for _ in range(state_parts)]
    hx = zeros[0] if state_parts == 1 else tuple(zeros)
    return {name: _train_step(layer, x, hx) for name, layer in layers.items()}


def _clock(dev: torch.device):
    """The clock to time a step with: CPU seconds of this process on one CPU thread, else wall time.

    With one thread, the process's CPU time is the step's own work, whatever else the machine runs
    (on an idle machine it equals wall time); a GPU's work shows only on the wall clock.
    """
    if dev.type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time, "CPU time of this process"
    return time.perf_counter, "wall time"


def measure(steps: dict, dev: torch.device, warmup: int, repeats: int, budget_s: float):
    """Time the contenders, interleaved; stop after ``repeats`` rounds or ``budget_s`` (3 rounds at least).

    Returns ``(times, rounds)``: per contender, the list of seconds of each round.
    """
    clock, _ = _clock(dev)
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times = {name: [] for name in names}
    start = time.perf_counter()
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:  # alternate who goes first
            _sync(dev)
            t0 = clock()
            steps[name]()
            _sync(dev)
            times[name].append(clock() - t0)
        if r >= 2 and time.perf_counter() - start > budget_s:
            break
    return times, r + 1


def _ratio(times: dict, name: str) -> float:
    # The median of the ratios of one round: each pair ran back to back, so a busy moment of the
    # machine slows both and mostly cancels.
    return statistics.median(a / b for a, b in zip(times[name], times["torch"]))


def _devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def options(argv: list[str] | None, description: str, quick_help: str) -> argparse.Namespace:
    """A benchmark's options, ``--quick`` and ``--threads`` (default 1), parsed; torch's threads set."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: steady timings on a shared machine; "
                             "more threads are timed by the wall clock)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def run(argv: list[str] | None, description: str, configs: list, make: Callable, target: float,
        scratch_label: str = "reference") -> int:
    """Parse the options, time ``make(kwargs, T, B, dev)``'s contenders per configuration, print a table.

    Returns the exit status: 0 when every fused ratio is at most ``target``, else 1.
    """
    args = options(argv, description, "short sequences (T = 20): a smoke test")
    # (warm-up rounds, most rounds, seconds per configuration, sequence length override)
    warmup, repeats, budget_s, T_quick = (2, 25, 1.0, 20) if args.quick else (5, 60, 10.0, None)
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads; median over n rounds after {warmup} warm-up; "
          "ratio = median over rounds of (that step / torch's step in the same round)")
    header = (f"{'device':<6} {'config':<16} {'T':>4} {'B':>3} {'n':>3} {'torch ms':>9} {'seqmem ms':>10} "
              f"{'ratio':>6} {scratch_label + ' ms':>13} {'ratio':>6}")
    print("clock: " + "; ".join(f"{dev.type}, {_clock(dev)[1]}" for dev in _devices()))
    print(header)
    print("-" * len(header))
    worst = 0.0
    for dev in _devices():
        for name, kwargs, T, B in configs:
            T = T_quick or T
            times, n = measure(make(kwargs, T, B, dev), dev, warmup, repeats, budget_s)
            ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            fused = _ratio(times, "seqmem")
            worst = max(worst, fused)
            print(f"{dev.type:<6} {name:<16} {T:>4} {B:>3} {n:>3} {ms['torch']:>9.2f} {ms['seqmem']:>10.2f} "
                  f"{fused:>6.2f} {ms['reference']:>13.2f} {_ratio(times, 'reference'):>6.2f}")
    ok = worst <= target
    print(f"worst fused ratio seqmem/torch: {worst:.2f} (target <= {target:.2f}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    return run(argv, __doc__.splitlines()[0], CONFIGS,
               lambda kwargs, T, B, dev: contenders(torch.nn.RNN, seqmem.RNN, kwargs, T, B, dev), TARGET)


if __name__ == "__main__":
    sys.exit(main())

"""The timing table of bench_attention.py and bench_transformer.py (forward + backward, three contenders).

Both scripts time, per configuration and device, three closures (``torch``: the reference,
``seqmem``: the library's default path, ``scratch``: its from-scratch path), interleaved by
bench_rnn.py's ``measure``, and print one row each: the configuration's sizes, the median ms of
every contender and the median over rounds of its ratio to torch's. ``run`` is that loop, with
the options and the header; a script gives its configurations, the columns that show them and
how to make the contenders. Not a benchmark itself (it is not ``bench_*.py``): the scripts import
it from their own folder, as they import bench_rnn.
"""
from __future__ import annotations

import platform
import statistics
from typing import Callable, Sequence

import torch

from bench_rnn import _clock, _devices, _ratio, measure, options


def run(argv: list[str] | None, description: str, configs: list, columns: Sequence[tuple[str, int]],
        shown: Callable[[tuple], tuple], make: Callable[[tuple, torch.device], dict], target: float,
        note: str = "") -> int:
    """Parse the options (bench_rnn's ``options``), time ``make(config, dev)``'s contenders, print the table.

    ``configs`` are tuples whose first item is the row's name; ``columns`` the (label, width) of
    the sizes each row shows after it, ``shown(config)`` their values; ``note`` ends the first
    line. ``--quick`` times the first two configurations only. Returns the exit status: 0 when
    every fused ratio seqmem / torch is at most ``target``, else 1.
    """
    args = options(argv, description, "the first two configurations only: a smoke test")
    # (warm-up rounds, most rounds, seconds per configuration, configurations)
    warmup, repeats, budget_s, configs = (3, 80, 2.0, configs[:2]) if args.quick else (5, 200, 10.0, configs)
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads; median over n rounds after {warmup} warm-up; "
          "ratio = median over rounds of (that step / torch's step in the same round); a step is forward + backward"
          + note)
    print("clock: " + "; ".join(f"{dev.type}, {_clock(dev)[1]}" for dev in _devices()))
    sizes = "".join(f" {label:>{width}}" for label, width in columns)
    header = (f"{'device':<6} {'config':<13}{sizes} {'n':>3} {'torch ms':>9} "
              f"{'seqmem ms':>10} {'ratio':>6} {'scratch ms':>11} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for dev in _devices():
        for config in configs:
            times, n = measure(make(config, dev), dev, warmup, repeats, budget_s)
            ms = {key: 1e3 * statistics.median(value) for key, value in times.items()}
            fused = _ratio(times, "seqmem")
            worst = max(worst, fused)
            values = "".join(f" {value:>{width}}" for value, (_, width) in zip(shown(config), columns))
            print(f"{dev.type:<6} {config[0]:<13}{values} {n:>3} {ms['torch']:>9.2f} "
                  f"{ms['seqmem']:>10.2f} {fused:>6.2f} {ms['scratch']:>11.2f} {_ratio(times, 'scratch'):>6.2f}")
    ok = worst <= target
    print(f"worst fused ratio seqmem/torch: {worst:.2f} (target <= {target:.2f}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1

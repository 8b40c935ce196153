"""Benchmark: one training step of the NTM and of the DNC on a batch, against a loop over the batch's examples.

The memory of ``seqmem.NTMCell`` and ``seqmem.dnc.DNCCell`` lives in their state, (B, N, W), so
one call steps B memories at once: every addressing stage is a batched tensor operation. The
alternative is a loop over the examples, one sequence at B = 1 after another. Both contenders
compute the same gradient: a step is the forward pass over T steps (``seqmem.unroll``), the
backward pass of the binary cross-entropy against random target bits (the batched step averages
over the B examples; the loop adds each example's loss divided by B, backward one at a time) and
an SGD update, on the same cell and the same inputs. The method is bench_rnn.py's (whose
helpers this script uses): the two take turns in an order that alternates between rounds, each
time is the median of the rounds after a warm-up, and the ratio loop / batched is the median
over rounds of (the loop's step / the batched step of the same round). On the CPU with one thread
(the default) a step is timed by this process's CPU time; on a GPU by the wall clock. The DNC
gains less than the NTM: most of its step is elementwise work on its (B, N, N) link matrix, which
grows with B, where most of the NTM's step at B = 1 is the cost of calling small operations.

Beside the ratios, the steps to converge on copy from chapter 8's results files (no training here):
for each model, the episodes each seed saw before its first validation with at most 0.1 bit errors
per sequence (``seqmem.memory_runs.sequences_to_converge``), their median over the seeds, and the
reference figure where one is stated: pytorch-ntm's "should converge in less than 30K iterations" at
batch size 1, i.e. 30,000 episodes.

Run:   python bench/bench_memory.py [--quick] [--threads N] [--json PATH]
       (--quick: three rounds after one warm-up, a smoke test; --json: also write the table as JSON)

Exits with status 1 when a ratio loop / batched is below 5: batching must pay at B = 32.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import torch
from torch.nn import functional as F

import seqmem
from seqmem.memory_runs import sequences_to_converge
from bench_rnn import _clock, _devices, measure

TARGET = 5.0  # the least the loop may cost, as a multiple of the batched step

B, I, O, N, W, H = 32, 9, 8, 128, 20, 100  # the copy task's sizes; the chapter's memory and controller
# (name, the cell, T): an NTM and a DNC with one read head each
CONFIGS = [
    ("NTM", lambda: seqmem.NTMCell(I, O, controller_size=H, memory_size=N, word_size=W, read_heads=1), 20),
    ("DNC", lambda: seqmem.DNCCell(I, H, O, memory_slots=N, word_size=W, read_heads=1), 20),
]


RECORDS = Path(__file__).resolve().parents[1] / "book" / "08-ntm-dnc" / "experiments"
# (model, its copy record, the reference's episodes to converge and where it is stated, or None)
CONVERGENCE = [
    ("NTM", "ntm_copy.json",
     (30_000, 'pytorch-ntm, seeds "should converge in less than 30K iterations" at batch size 1')),
    ("DNC", "dnc_copy.json", None),
]


def convergence(level: float = 0.1) -> list[dict]:
    """Episodes to the first validation at or below ``level`` bit errors, per seed and their median."""
    rows = []
    for model, name, reference in CONVERGENCE:
        record = json.loads((RECORDS / name).read_text())
        batch = record["config"]["batch_size"]
        seen = {run["seed"]: sequences_to_converge(run, batch, level) for run in record["runs"]}
        reached = [v for v in seen.values() if v is not None]
        median = statistics.median(reached) if len(reached) > len(seen) / 2 else None  # most seeds must converge
        row = {"model": model, "record": name, "level": level, "batch_size": batch,
               "eval_every": record["config"]["eval_every"], "episodes_by_seed": seen,
               "converged": len(reached), "seeds": len(seen), "median_episodes": median,
               "reference_episodes": reference[0] if reference else None,
               "reference": reference[1] if reference else None}
        row["ratio_to_reference"] = median / reference[0] if reference and median is not None else None
        rows.append(row)
    return rows


def contenders(make_cell, T: int, dev: torch.device) -> dict:
    """The batched step and the loop over the batch, as closures training one cell from the same data."""
    torch.manual_seed(0)
    cell = make_cell().to(dev)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, I, generator=g).to(dev)  # (B, T, I)
    bits = torch.randint(0, 2, (B, T, O), generator=g).float().to(dev)  # (B, T, O)
    opt = torch.optim.SGD(cell.parameters(), lr=1e-3)

    def batched():
        opt.zero_grad(set_to_none=True)
        ys, _ = seqmem.unroll(cell, x)  # (B, T, O): B memories stepped at once
        F.binary_cross_entropy_with_logits(ys, bits).backward()
        opt.step()

    def loop():
        opt.zero_grad(set_to_none=True)
        for b in range(B):  # one example at a time, (1, T, I)
            ys, _ = seqmem.unroll(cell, x[b:b + 1])  # (1, T, O)
            (F.binary_cross_entropy_with_logits(ys, bits[b:b + 1]) / B).backward()  # the gradients add up
        opt.step()

    return {"batched": batched, "loop": loop}


def options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three rounds after one warm-up: a smoke test")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: steady timings on a shared machine; "
                             "more threads are timed by the wall clock)")
    parser.add_argument("--json", default=None, help="also write the table to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    # (warm-up rounds, most rounds, seconds per configuration): a loop's DNC step takes seconds
    warmup, repeats, budget_s = (1, 3, 0.0) if args.quick else (2, 30, 20.0)
    print(f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, "
          f"{torch.get_num_threads()} CPU threads; median over n rounds after {warmup} warm-up; "
          "ratio = median over rounds of (the loop's step / the batched step in the same round); "
          f"a step is forward + backward + SGD over B = {B} sequences, N = {N}, W = {W}, H = {H}")
    print("clock: " + "; ".join(f"{dev.type}, {_clock(dev)[1]}" for dev in _devices()))
    header = f"{'device':<6} {'model':<5} {'B':>3} {'T':>3} {'N':>4} {'W':>3} {'n':>3} {'batched ms':>11} " \
             f"{'loop ms':>9} {'loop/batched':>13}"
    print(header)
    print("-" * len(header))
    rows = []
    for dev in _devices():
        for name, make_cell, T in CONFIGS:
            times, n = measure(contenders(make_cell, T, dev), dev, warmup, repeats, budget_s)
            ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
            ratio = statistics.median(a / b for a, b in zip(times["loop"], times["batched"]))
            rows.append({"device": dev.type, "model": name, "B": B, "T": T, "N": N, "W": W, "rounds": n,
                         "batched_ms": ms["batched"], "loop_ms": ms["loop"], "ratio": ratio})
            print(f"{dev.type:<6} {name:<5} {B:>3} {T:>3} {N:>4} {W:>3} {n:>3} {ms['batched']:>11.2f} "
                  f"{ms['loop']:>9.2f} {ratio:>13.2f}")
    worst = min(row["ratio"] for row in rows)
    ok = worst >= TARGET
    print(f"worst ratio loop/batched: {worst:.2f} (target >= {TARGET:.2f}): {'ok' if ok else 'FAIL'}")
    converge = convergence()
    print(f"\nsteps to converge on copy (chapter 8's records): episodes seen to the first validation with at most "
          f"{converge[0]['level']} bit errors per sequence, median over the seeds that converged")
    header = f"{'model':<5} {'converged':>9} {'episodes by seed':<26} {'median':>8} {'reference':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for c in converge:
        by_seed = ", ".join("never" if v is None else f"{v:,}" for v in c["episodes_by_seed"].values())
        median = "-" if c["median_episodes"] is None else f"{c['median_episodes']:,.0f}"
        ref = "-" if c["reference_episodes"] is None else f"{c['reference_episodes']:,}"
        ratio = "-" if c["ratio_to_reference"] is None else f"{c['ratio_to_reference']:.2f}"
        print(f"{c['model']:<5} {c['converged']:>4} of {c['seeds']:<2} {by_seed:<26} {median:>8} {ref:>9} {ratio:>6}")
    for c in converge:
        if c["reference"]:
            print(f"reference for the {c['model']}: {c['reference']}; validations every {c['eval_every']} steps of "
                  f"{c['batch_size']}, so a figure is resolved to {c['eval_every'] * c['batch_size']:,} episodes")
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump({"benchmark": __doc__.splitlines()[0], "torch": torch.__version__,
                       "python": platform.python_version(), "machine": platform.machine(),
                       "threads": torch.get_num_threads(), "clock": {dev.type: _clock(dev)[1] for dev in _devices()},
                       "quick": args.quick, "target": TARGET, "worst": worst, "ok": ok, "rows": rows,
                       "convergence": converge}, f, indent=1)
            f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

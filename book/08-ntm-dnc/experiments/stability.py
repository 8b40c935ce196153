"""Ten thousand training steps of an NTM and of a DNC on copy: no NaN, no inf (chapter 8).

The public re-implementations of these machines are known for NaNs after thousands of steps. This
script trains each of the chapter's small machines (the live ones of pages 02 and 04: an NTM with
an LSTM controller of 64, 24 slots of 8; a DNC with an LSTM controller of 32, 8 slots of 8) for
``--steps`` (10,000) Adam steps on copy at the live pages' learning rate of 3e-3 (three times the
full-size runs'), with the gradient's norm clipped to 10 as in the chapter, and counts the steps
whose loss and gradient norm (before clipping) were finite; at the end, whether every parameter
is, and the largest magnitude in the memory over a batch of test episodes. The test
suite reads the results file (``tests/ch08_ntm_dnc/test_stability_record.py``).

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/stability.py             # both machines, CPU, 1 thread
    python book/08-ntm-dnc/experiments/stability.py --quick --out /tmp/quick.json
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import seqmem
from seqmem import dnc, memory_runs, ntm, tasks
from seqmem.experiment import Record

HERE = Path(__file__).resolve().parent
MACHINES = {
    "ntm": (lambda: ntm.NTMCell(9, 8, controller_size=64, memory_size=24, word_size=8), 6),
    "dnc": (lambda: dnc.DNCCell(9, 32, 8, memory_slots=8, word_size=8, read_heads=1), 5),
}  # name: (the cell, the longest training sequence)


def run(name: str, seed: int, cfg: dict) -> dict:
    make, max_len = MACHINES[name]
    torch.manual_seed(seed)
    model = make()
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    finite_loss, finite_grad, losses, start = 0, 0, [], time.perf_counter()
    for step in range(cfg["steps"]):
        batch = tasks.copy_sequences(cfg["batch_size"], 1, max_len, generator=generator)
        loss, _ = memory_runs.memory_loss(model, batch)
        opt.zero_grad()
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_norm"]))
        opt.step()
        value = float(loss.detach())
        finite_loss += math.isfinite(value)
        finite_grad += math.isfinite(norm)
        losses.append(value)
    model.eval()
    test = tasks.copy_sequences(200, 1, max_len, generator=torch.Generator().manual_seed(10_000))
    with torch.no_grad():
        if name == "ntm":
            _, state = seqmem.unroll(model, test.inputs)
        else:
            _, state = dnc.trace(model, test.inputs)
    every = max(1, cfg["steps"] // 500)
    return {"machine": name, "seed": seed, "max_len": max_len,
            "finite_loss_steps": finite_loss, "finite_grad_norm_steps": finite_grad,
            "parameters_finite": all(bool(torch.isfinite(p).all()) for p in model.parameters()),
            "memory_max_abs": float(state.memory.abs().max()),
            "memory_finite": bool(torch.isfinite(state.memory).all()),
            "test": memory_runs.scores(model, test),
            "train_loss": [sum(losses[i - every:i]) / every for i in range(every, len(losses) + 1, every)],
            "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="20 steps")
    parser.add_argument("--out", default=str(HERE / "stability.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = {"steps": 20 if args.quick else args.steps, "lr": 3e-3, "clip_norm": 10.0, "batch_size": 16,
           "machines": "ntm: NTMCell(9, 8, controller_size=64, memory_size=24, word_size=8), lengths 1-6; "
                       "dnc: DNCCell(9, 32, 8, memory_slots=8, word_size=8), lengths 1-5",
           "optimizer": "Adam(lr), the gradient's total norm clipped to clip_norm"}
    record = Record(args.out, "ten thousand training steps of an NTM and a DNC on copy: finite losses, "
                    "gradients, parameters and memories", cfg, [args.seed], key=("machine", "seed"),
                    order=lambda r: r["machine"], device="cpu, 1 thread")
    for name in MACHINES:
        row = run(name, args.seed, cfg)
        record.add(row)
        print(f"{name}: {row['finite_loss_steps']} / {cfg['steps']} finite losses, "
              f"{row['finite_grad_norm_steps']} finite gradient norms, parameters finite: "
              f"{row['parameters_finite']}, memory max |x| {row['memory_max_abs']:.3f}, test bit errors "
              f"{row['test']['bit_errors']:.3f} ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

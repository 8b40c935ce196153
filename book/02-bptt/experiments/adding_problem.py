"""Chapter 2's heavy experiment: the adding problem at T = 100, tanh RNN against its remedies.

Every network gets the same budget: the same number of optimizer steps on batches of the same
size, drawn from the same seeded stream, with the same optimizer (Adam), learning rate and
gradient clipping (except the run that measures clipping by leaving it out). Each run records the
held-out MSE (1000 fixed sequences) every ``--eval-every`` steps and the mean training MSE over the
same windows. Answering 1 always scores 1/6 ≈ 0.167.

Run from the repository root (the committed file took 49 minutes on a shared two-core machine,
two runs at a time):

    python book/02-bptt/experiments/adding_problem.py

writes book/02-bptt/experiments/adding_problem.json (a ``seqmem.experiment.Record``): the command,
the settings, the seeds, the versions, the machine, and every run's curves. The file is rewritten
after each run, so an interrupted run keeps what it finished. ``--only NAME ...`` runs some entries
of RUNS and merges them into the file (``--only "skip, ReLU"``). ``--quick`` is a smoke test
(T = 10, 60 steps).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch

from seqmem import remedies
from seqmem.experiment import Record

HERE = Path(__file__).resolve().parent
EXPERIMENT = "adding problem, the tanh RNN against its remedies (clipping, IRNN, skip connections)"

# (name, network, gradient clipping, seeds): the plain RNN and each remedy, in the chapter's order.
RUNS = [
    ("tanh", "tanh", 1.0, (0, 1, 2)),
    ("irnn", "irnn", 1.0, (0, 1, 2)),
    ("irnn, no clipping", "irnn", None, (0, 1)),
    ("skip", "skip", 1.0, (0, 1)),
    ("skip, ReLU", "skip-relu", 1.0, (0, 1)),
]
ORDER = [name for name, *_ in RUNS]


def one_run(job: dict) -> dict:
    """Train one network with one seed; return its curves and timing."""
    torch.set_num_threads(1)  # tiny matrices: one thread per run is fastest, two runs share the cores
    start = time.perf_counter()
    _, history = remedies.train_adding(job["kind"], T=job["T"], steps=job["steps"], hidden_size=job["hidden_size"],
                                       batch_size=job["batch_size"], optimizer="adam", lr=job["lr"],
                                       clip_grad_norm=job["clip"], seed=job["seed"], eval_every=job["eval_every"])
    loss = np.asarray(history.loss, dtype=float)
    window = job["eval_every"]
    train = loss[: len(loss) // window * window].reshape(-1, window).mean(axis=1)  # mean per window
    return {**job, "steps_evaluated": [s for s, _ in history.evals],
            "test_mse": [float(v) for _, v in history.evals], "train_mse": train.tolist(),
            "final_test_mse": float(history.evals[-1][1]), "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--hidden-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="smoke test: T = 10, 60 steps, one seed")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these entries of RUNS and merge "
                   "them into an existing --out (same settings), replacing runs of the same name and seed")
    p.add_argument("--out", type=Path, default=HERE / "adding_problem.json")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.steps, args.eval_every = 10, 60, 20
    config = {"T": args.T, "steps": args.steps, "hidden_size": args.hidden_size, "batch_size": args.batch_size,
              "lr": args.lr, "eval_every": args.eval_every, "optimizer": "adam", "eval_size": 1000}
    jobs = [{"name": name, "kind": kind, "clip": clip, "seed": s, **config}
            for name, kind, clip, seeds in RUNS for s in (seeds[:1] if args.quick else seeds)
            if not args.only or name in args.only]
    record = Record(args.out, EXPERIMENT, config, sorted({job["seed"] for job in jobs}), key=("name", "seed"),
                    order=lambda r: (ORDER.index(r["name"]), r["seed"]), merge=bool(args.only), baseline_mse=1 / 6)
    with mp.Pool(args.workers) as pool:
        for result in pool.imap(one_run, jobs):  # in order, so the file grows in the order of RUNS
            record.add(result)
            print(f"{result['name']:>18} seed {result['seed']}: final test MSE {result['final_test_mse']:.4f} "
                  f"({result['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

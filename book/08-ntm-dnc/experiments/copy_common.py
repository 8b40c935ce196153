"""What ntm_copy.py and lstm_copy.py share: the copy task's data, one seed's run, the options, the record.

Not an experiment itself: the two scripts import it from their folder. Both train on
``tasks.copy_sequences`` (8 bits and a delimiter in, 8 bits out; lengths uniform in 1 ... 20,
B sequences padded together, fresh each step from a generator seeded with the run's seed) with
``seqmem.memory_runs.train_best``: the recall cross-entropy per sequence, the gradient's total
norm clipped, a validation every ``eval_every`` steps on ``val_size`` sequences of lengths 1-20
(seed 20_000) whose lowest cost in bits selects the parameters that are tested. The test:
``test_size`` sequences of each length L in 1 ... ``test_max_len`` (seed 10_000 + L), scored by bit
errors per sequence and cost in bits (``memory_runs.scores``). A script says how to build its model
and its optimizer, and its own options and descriptions.
"""
from __future__ import annotations

import argparse
import time
from functools import partial
from typing import Callable

import torch

from seqmem import memory_runs, tasks
from seqmem.experiment import Record

N_BITS = 8
TRAIN_LEN = (1, 20)
VAL_SEED, TEST_SEED = 20_000, 10_000  # the validation set's seed; the test set of length L: TEST_SEED + L

#: The configuration's descriptions that both scripts share (the data, the test, the selection).
DESCRIPTIONS = {
    "task": "tasks.copy_sequences(batch_size, 1, 20, 8): lengths uniform in 1-20, padded together",
    "test_set": "test_size sequences of each length 1..test_max_len, seed 10000 + length",
    "selection": "the parameters of the lowest validation cost (val_size sequences of lengths 1-20, seed 20000)",
}


def add_shared_arguments(parser: argparse.ArgumentParser, test_size: int) -> None:
    """The options of every training script of the chapter (copy, recall, the DNC's): seeds, merge,
    budget, validation, the test's size (``test_size`` episodes per length or number of items),
    batch size."""
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--merge", action="store_true", help="add these seeds' runs to the existing --out")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--test-size", type=int, default=test_size)
    parser.add_argument("--batch-size", type=int, default=16)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of both copy scripts: the shared ones, 100 test sequences per length up to 40."""
    add_shared_arguments(parser, test_size=100)
    parser.add_argument("--test-max-len", type=int, default=40)


def add_run_arguments(parser: argparse.ArgumentParser, out: str, per: str = "sequences per length") -> None:
    """The options that end the command lines: the device, --quick (its test ``per`` length or size), the
    results file."""
    parser.add_argument("--device", default="cpu", help="cpu (default, one thread), cuda, ...")
    parser.add_argument("--quick", action="store_true", help=f"a tiny run: 30 steps, 20 validation and 5 test "
                                                             f"{per}")
    parser.add_argument("--out", default=out)


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    if args.quick:
        args.steps, args.eval_every, args.val_size, args.test_size = 30, 15, 20, 5
    return args


def settings(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The options ``names`` (attribute names) as a configuration dict, in that order."""
    return {name: getattr(args, name) for name in names}


def run(cfg: dict, seed: int, device, build: Callable, optimizer: Callable) -> dict:
    """One seed: ``build(cfg, device)`` trained by ``optimizer(cfg, model)``, best validated, tested by length.

    The seed fixes the initial weights (torch's global generator, before ``build``) and the
    training batches (their own generator); the validation and test sets are the same for every seed.
    """
    torch.manual_seed(seed)
    model = build(cfg, device)
    generator = torch.Generator().manual_seed(seed)
    lo, hi = cfg["train_len"]
    val = tasks.copy_sequences(cfg["val_size"], lo, hi, N_BITS, torch.Generator().manual_seed(VAL_SEED),
                               device=device)
    start = time.perf_counter()
    training = memory_runs.train_best(
        model, lambda step: tasks.copy_sequences(cfg["batch_size"], lo, hi, N_BITS, generator, device=device),
        val, steps=cfg["steps"], optimizer=optimizer(cfg, model), eval_every=cfg["eval_every"],
        clip_grad_norm=cfg["clip_norm"], log=partial(print, flush=True))
    results = memory_runs.scores_by_size(
        model, lambda L: tasks.copy_sequences(cfg["test_size"], L, L, N_BITS,
                                              torch.Generator().manual_seed(TEST_SEED + L), device=device),
        range(1, cfg["test_max_len"] + 1))
    return {"seed": seed, "results": results, **training.fields(model),
            "seconds": round(time.perf_counter() - start, 1)}


def seed_record(args: argparse.Namespace, experiment: str, cfg: dict) -> tuple[torch.device, Record]:
    """The device of ``--device`` (one thread on the CPU) and the results file ``--out`` of one run per
    seed (``--merge``: added to the file there)."""
    torch.set_num_threads(1)
    device = torch.device(args.device)
    record = Record(args.out, experiment, cfg, args.seeds, key=("seed",), order=lambda r: r["seed"],
                    merge=args.merge, device=f"{device}, 1 thread" if device.type == "cpu" else str(device))
    return device, record


def main(args: argparse.Namespace, experiment: str, cfg: dict, build: Callable, optimizer: Callable) -> None:
    """Run every seed of ``args.seeds`` into the results file ``args.out`` (one thread on the CPU)."""
    device, record = seed_record(args, experiment, cfg)
    for seed in args.seeds:
        row = run(cfg, seed, device, build, optimizer)
        record.add(row)
        for L, s in row["results"].items():
            print(f"seed {seed}, length {L:>2}: bit errors per sequence {s['bit_errors']:7.3f}, "
                  f"cost {s['cost_bits']:8.3f} bits")
        print(f"seed {seed}: {row['seconds']:.0f} s, {row['steps_per_second']:.2f} training steps per second, "
              f"best validation step {row['best_step']}", flush=True)

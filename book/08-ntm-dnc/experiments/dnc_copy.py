"""Copy by a Differentiable Neural Computer with a small memory: perfect copies, reuse and more slots (chapter 8).

One ``seqmem.dnc.DNCCell`` (an LSTM controller of 64 units, a memory of N = 15 slots of W = 12,
one read head and the DNC's one write head) trains on copy with lengths 1-10
(``--task copy``: ``tasks.copy_sequences``), or on series of three copies back to back
(``--task series``: ``tasks.copy_series``, up to 30 vectors for 15 slots: a series longer than
15 vectors can pass only if the DNC frees the slots of each sequence once recalled and allocates
them again, the test of dynamic allocation in Graves et al. 2016's extended data). The loss is the recall cross-entropy per episode in nats,
averaged over the batch; Adam with learning rate 1e-3 and the gradient's total norm clipped to 10;
every ``--eval-every`` steps the validation cost (``--val-size`` episodes of the training task,
seed 20_000) in bits, and the parameters of the lowest validation cost are the ones tested.

The tests, each on fresh episodes (``--test-size`` of each kind, seeds from 10_000): copy at every
length 1-10 and, beyond the training lengths, 11-20; series of 1 to 5 copies of lengths 1-10;
each with the trained memory of 15 slots and, without retraining, with 30 and 60 slots (a DNC's
parameters do not depend on N: the same weights run any memory size). A test episode counts as
copied **perfectly** when none of its recall bits is wrong (``tasks.bit_errors`` = 0); the
chapter's target is at least 95% of copy episodes of lengths 1-10 with the 15 slots.

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/dnc_copy.py --seeds 0 1 2                  # copy (CPU, 1 thread)
    python book/08-ntm-dnc/experiments/dnc_copy.py --task series --seeds 0 1 2    # dnc_series.json
    python book/08-ntm-dnc/experiments/dnc_copy.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration, the
seeds, the versions, the machine and, per seed, the curves, the tests and the time. With
``--save-params`` the best seed's parameters are saved beside it (``<out>`` with the suffix
``.pt``), for looking inside the trained machine:

    python book/08-ntm-dnc/experiments/dnc_copy.py --task series --seeds 1 --save-params \
        --out book/08-ntm-dnc/experiments/dnc_series_seed1.json     # and dnc_series_seed1.pt
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import copy_common
import seqmem
from seqmem import dnc, memory_runs, tasks
from seqmem.experiment import Record

HERE = Path(__file__).resolve().parent
N_BITS = 8
TEST_SLOTS = (15, 30, 60)


def build(cfg: dict, device, slots: int | None = None) -> dnc.DNCCell:
    """The DNC of the configuration (with ``slots`` memory slots if given), on ``device``."""
    return dnc.DNCCell(N_BITS + 1, cfg["hidden_size"], N_BITS, memory_slots=slots or cfg["memory_slots"],
                       word_size=cfg["word_size"], read_heads=cfg["read_heads"]).to(device)


def episodes(cfg: dict, task: str, batch_size: int, generator, device, lo=None, hi=None, parts=None):
    lo, hi = lo or cfg["train_len"][0], hi or cfg["train_len"][1]
    if task == "copy":
        return tasks.copy_sequences(batch_size, lo, hi, N_BITS, generator, device=device)
    return tasks.copy_series(batch_size, parts or cfg["series_parts"], lo, hi, N_BITS, generator, device=device)


def tests(model, cfg: dict, device) -> dict:
    """Every test of the docstring, for each memory size in TEST_SLOTS (the same parameters)."""
    n, out = cfg["test_size"], {}
    for slots in TEST_SLOTS:
        probe = build(cfg, device, slots)
        probe.load_state_dict(model.state_dict())
        probe.eval()
        copies = memory_runs.scores_by_size(
            probe, lambda L: episodes(cfg, "copy", n, torch.Generator().manual_seed(10_000 + L), device, L, L),
            range(1, 2 * cfg["train_len"][1] + 1))
        series = memory_runs.scores_by_size(
            probe, lambda k: episodes(cfg, "series", n, torch.Generator().manual_seed(11_000 + k), device, parts=k),
            range(1, 6))
        out[str(slots)] = {"copy_by_length": copies, "series_by_parts": series}
    return out


def run(cfg: dict, seed: int, device) -> tuple[dict, dict]:
    """One seed: train (``memory_runs.train_best``), test, and the run's fields with its best parameters."""
    torch.manual_seed(seed)
    model = build(cfg, device)
    generator = torch.Generator().manual_seed(seed)
    val = episodes(cfg, cfg["task"], cfg["val_size"], torch.Generator().manual_seed(20_000), device)
    start = time.perf_counter()
    training = memory_runs.train_best(
        model, lambda step: episodes(cfg, cfg["task"], cfg["batch_size"], generator, device), val,
        steps=cfg["steps"], optimizer=torch.optim.Adam(model.parameters(), lr=cfg["lr"]),
        eval_every=cfg["eval_every"], clip_grad_norm=cfg["clip_norm"],
        log=lambda line: print(f"seed {seed}, {line}", flush=True))
    row = {"seed": seed, "results": tests(model, cfg, device), **training.fields(model),
           "seconds": round(time.perf_counter() - start, 1)}
    return row, {k: v.clone() for k, v in model.state_dict().items()}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=["copy", "series"], default="copy")
    copy_common.add_shared_arguments(parser, test_size=200)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--memory-slots", type=int, default=15)
    parser.add_argument("--word-size", type=int, default=12)
    parser.add_argument("--read-heads", type=int, default=1)
    parser.add_argument("--series-parts", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-norm", type=float, default=10.0)
    parser.add_argument("--device", default="cpu", help="cpu (default, one thread), cuda, ...")
    parser.add_argument("--quick", action="store_true", help="a tiny run: 20 steps, 10 validation and 4 test "
                                                             "episodes of each kind")
    parser.add_argument("--save-params", action="store_true", help="save the best seed's parameters "
                                                                   "beside --out, its suffix replaced by .pt")
    parser.add_argument("--out", default=None, help="default: dnc_copy.json or dnc_series.json beside this script")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = str(HERE / f"dnc_{args.task}.json")
    if args.quick:
        args.steps, args.eval_every, args.val_size, args.test_size = 20, 10, 10, 4
    return args


def main(argv=None):
    args = arguments(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    cfg = {**{k: getattr(args, k) for k in ("task", "steps", "eval_every", "val_size", "test_size", "batch_size",
                                            "hidden_size", "memory_slots", "word_size", "read_heads",
                                            "series_parts", "lr", "clip_norm")},
           "train_len": [1, 10], "n_bits": N_BITS, "test_slots": list(TEST_SLOTS),
           "model": "dnc.DNCCell(9, hidden_size, 8, memory_slots, word_size, read_heads), LSTM controller",
           "loss": "tasks.sequence_cost(..., bits=False).mean(): recall cross-entropy per episode, nats",
           "optimizer_settings": "Adam(lr), the gradient's total norm clipped to clip_norm",
           "tests": "per memory size in test_slots (the same parameters): copy of each length 1-20, "
                    "test_size episodes each (seed 10000 + length); series of 1-5 copies of lengths 1-10 "
                    "(seed 11000 + parts); perfect = no recall bit wrong",
           "selection": "the parameters of the lowest validation cost (val_size episodes of the training task, "
                        "seed 20000)"}
    experiment = {"copy": "copy by a DNC of 15 slots, lengths 1-10: perfect copies, series through the same "
                          "slots, and 30 or 60 slots without retraining",
                  "series": "series of 3 copies by a DNC of 15 slots (up to 30 vectors): memory reuse by free "
                            "gates and allocation, and 30 or 60 slots without retraining"}[args.task]
    record = Record(args.out, experiment, cfg, args.seeds, key=("seed",), order=lambda r: r["seed"],
                    merge=args.merge, device=f"{device}, 1 thread" if device.type == "cpu" else str(device))
    best_cost = float("inf")
    for seed in args.seeds:
        row, state = run(cfg, seed, device)
        record.add(row)
        trained = row["results"][str(cfg["memory_slots"])]
        inside = [trained["copy_by_length"][str(L)]["perfect"] for L in range(1, 11)]
        print(f"seed {seed}: perfect copies, lengths 1-10: {sum(inside) / len(inside):.3f}; series by parts: "
              + ", ".join(f"{k}: {v['perfect']:.3f}" for k, v in trained["series_by_parts"].items())
              + f" ({row['seconds']:.0f} s, {row['steps_per_second']:.2f} steps/s)", flush=True)
        if args.save_params and min(row["val_cost_bits"]) < best_cost:  # the best seed's parameters
            best_cost = min(row["val_cost_bits"])
            torch.save({"seed": seed, "config": cfg, "state_dict": state}, Path(args.out).with_suffix(".pt"))
        # (with --merge the parameters file is that of the best seed of this invocation)


if __name__ == "__main__":
    main()

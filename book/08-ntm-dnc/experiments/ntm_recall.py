"""Associative recall by a Neural Turing Machine: bit errors by number of items, trained on 2-6 (chapter 8).

The experiment of Graves et al. (2014, section 4.3, figures 10-12) on a laptop's budget. An episode
of ``tasks.associative_recall`` is a list of n items (n uniform in 2 ... 6 for training), each of
3 vectors of 6 bits opened by an item delimiter, then a query (any item except the last)
between two query delimiters, then 3 recall steps of zero input whose targets are the item that
followed the query in the list. The network must store the items, find the query's among them by
content, and read the one written after it: content addressing, then shifts by one slot.

The model is the NTM of ``ntm_copy.py`` (an LSTM controller of 100 units, N = 128 slots of W = 20,
one read and one write head, shifts -1, 0, +1), with 8 input channels (6 bits and the two
delimiters) and 6 outputs; the loss, the optimiser (Adam 1e-3, the gradient's total norm clipped to
10), the validation (every ``--eval-every`` steps on ``--val-size`` episodes of 2-6 items, seed
20_000) and the selection of the parameters of the lowest validation cost are those of the copy
run (``seqmem.memory_runs.train_best``). The test: ``--test-size`` fresh episodes of each number
of items n in 2 ... ``--test-max-items`` (seed 10_000 + n; lists longer than 6 items were never
trained on), scored by bit errors per episode (chance: 9 of the item's 18 bits) and cost in bits.

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/ntm_recall.py --seeds 0 1 2        # CPU, 1 thread
    python book/08-ntm-dnc/experiments/ntm_recall.py --seeds 3 --merge    # one more seed into the file
    python book/08-ntm-dnc/experiments/ntm_recall.py --seeds 0 --save-params --out /tmp/r0.json  # and 1, 2
    python book/08-ntm-dnc/experiments/ntm_recall.py --combine /tmp/r0.json /tmp/r1.json /tmp/r2.json
    python book/08-ntm-dnc/experiments/ntm_recall.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and, per seed, the curves, the test by number of items and
the time. With ``--save-params`` the best seed's parameters are saved beside it (the suffix
``.pt``). Seeds run side by side, one process each, write one file each; ``--combine`` joins those
files into ``--out`` (``seqmem.experiment.merge_files``, which records the join too) and copies the
parameters of the seed with the lowest validation cost, where the files have them, beside it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import copy_common
from seqmem import memory_runs, ntm, tasks
from seqmem.experiment import merge_files

HERE = Path(__file__).resolve().parent
EXPERIMENT = "associative recall by a Neural Turing Machine: bit errors by number of items 2-12, trained on 2-6"
N_BITS, ITEM_LEN = 6, 3
VAL_SEED, TEST_SEED = 20_000, 10_000  # the validation set's seed; the test set of n items: TEST_SEED + n


def build(cfg: dict, device) -> ntm.NTMCell:
    """The NTM of the configuration, on ``device``: 6 bits and two delimiters in, 6 bits out."""
    return ntm.NTMCell(N_BITS + 2, N_BITS, controller_size=cfg["controller_size"], memory_size=cfg["memory_size"],
                       word_size=cfg["word_size"], read_heads=cfg["read_heads"]).to(device)


def episodes(batch_size: int, items: tuple[int, int], generator, device) -> tasks.MemoryBatch:
    return tasks.associative_recall(batch_size, items[0], items[1], ITEM_LEN, N_BITS, generator, device=device)


def run(cfg: dict, seed: int, device, build) -> tuple[dict, dict]:
    """One seed of ``build(cfg, device)``: train, select, test by number of items.

    Returns the run's fields and its best parameters. The seed fixes the initial weights (torch's
    global generator, before ``build``) and the training episodes (their own generator); the
    validation and test sets are the same for every seed and every model.
    """
    torch.manual_seed(seed)
    model = build(cfg, device)
    generator = torch.Generator().manual_seed(seed)
    items = tuple(cfg["train_items"])
    val = episodes(cfg["val_size"], items, torch.Generator().manual_seed(VAL_SEED), device)
    start = time.perf_counter()
    training = memory_runs.train_best(
        model, lambda step: episodes(cfg["batch_size"], items, generator, device), val, steps=cfg["steps"],
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg["lr"]), eval_every=cfg["eval_every"],
        clip_grad_norm=cfg["clip_norm"], log=lambda line: print(f"seed {seed}, {line}", flush=True))
    results = memory_runs.scores_by_size(
        model, lambda n: episodes(cfg["test_size"], (n, n), torch.Generator().manual_seed(TEST_SEED + n), device),
        range(2, cfg["test_max_items"] + 1))
    row = {"seed": seed, "results": results, **training.fields(model),
           "seconds": round(time.perf_counter() - start, 1)}
    return row, {k: v.clone() for k, v in model.state_dict().items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both recall scripts share: the chapter's (``copy_common``), 200 test episodes per
    number of items up to 12, the optimiser's."""
    copy_common.add_shared_arguments(parser, test_size=200)
    parser.add_argument("--test-max-items", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip-norm", type=float, default=10.0)


def add_run_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """The options that end both command lines: the device, --quick, the results file (``copy_common``),
    --save-params and --combine."""
    copy_common.add_run_arguments(parser, out, per="episodes per number of items")
    parser.add_argument("--save-params", action="store_true", help="save the best seed's parameters beside --out")
    parser.add_argument("--combine", nargs="+", metavar="PART", help="join these results files (one seed "
                        "each, run side by side) into --out instead of training")


apply_quick = copy_common.apply_quick  # 30 steps, 20 validation and 5 test episodes


#: The configuration's descriptions that both scripts share (the data, the loss, the test, the selection).
DESCRIPTIONS = {
    "task": "tasks.associative_recall(batch_size, 2, 6, 3, 6): 2-6 items of 3 vectors of 6 bits",
    "loss": "tasks.sequence_cost(..., bits=False).mean(): recall cross-entropy per episode, nats",
    "optimizer_settings": "Adam(lr), the gradient's total norm clipped to clip_norm",
    "test_set": "test_size episodes of each number of items 2..test_max_items, seed 10000 + items",
    "selection": "the parameters of the lowest validation cost (val_size episodes of 2-6 items, seed 20000)",
}
SHARED = ("steps", "eval_every", "val_size", "test_size", "test_max_items", "batch_size")


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--controller-size", type=int, default=100)
    parser.add_argument("--memory-size", type=int, default=128)
    parser.add_argument("--word-size", type=int, default=20)
    parser.add_argument("--read-heads", type=int, default=1)
    add_run_arguments(parser, str(HERE / "ntm_recall.json"))
    return apply_quick(parser.parse_args(argv))


def combine(parts: list[str], out: str) -> None:
    """``--combine``: the parts joined into ``out``; the best seed's parameters (the lowest validation
    cost in bits) copied beside it as ``out`` with the suffix .pt, if that seed's part saved them."""
    data = merge_files(out, parts, key=("seed",))
    best = min(data["runs"], key=lambda r: min(r["val_cost_bits"]))
    for part in parts:
        record = json.loads(Path(part).read_text())
        saved = Path(part).with_suffix(".pt")
        if best["seed"] in [r["seed"] for r in record["runs"]] and saved.exists():
            assert torch.load(saved, weights_only=True)["seed"] == best["seed"], saved
            shutil.copy(saved, Path(out).with_suffix(".pt"))
            print(f"seed {best['seed']}'s parameters: {Path(out).with_suffix('.pt')}")
    print(f"{out}: seeds {data['seeds']}")


def run_seeds(args: argparse.Namespace, experiment: str, cfg: dict, build) -> None:
    """Every seed of ``args.seeds`` into the results file ``args.out`` (one thread on the CPU), or,
    with ``--combine``, the parts joined into it."""
    if args.combine:
        return combine(args.combine, args.out)
    device, record = copy_common.seed_record(args, experiment, cfg)
    best_cost = float("inf")
    for seed in args.seeds:
        row, state = run(cfg, seed, device, build)
        record.add(row)
        for n, s in row["results"].items():
            print(f"seed {seed}, {n:>2} items: bit errors per episode {s['bit_errors']:6.3f}, "
                  f"perfect {s['perfect']:.3f}")
        print(f"seed {seed}: {row['seconds']:.0f} s, {row['steps_per_second']:.2f} training steps per second, "
              f"best validation step {row['best_step']}", flush=True)
        if args.save_params and min(row["val_cost_bits"]) < best_cost:  # the best seed's parameters
            best_cost = min(row["val_cost_bits"])
            torch.save({"seed": seed, "config": cfg, "state_dict": state}, Path(args.out).with_suffix(".pt"))


def main(argv=None):
    args = arguments(argv)
    names = (*SHARED, "controller_size", "memory_size", "word_size", "read_heads", "lr", "clip_norm")
    cfg = {**{name: getattr(args, name) for name in names}, "train_items": [2, 6], "item_len": ITEM_LEN,
           "n_bits": N_BITS, "task": DESCRIPTIONS["task"],
           "model": "NTMCell(8, 6, controller_size, memory_size, word_size, read_heads), LSTM controller, "
                    "shifts -1..1",
           **{k: DESCRIPTIONS[k] for k in ("loss", "optimizer_settings", "test_set", "selection")}}
    run_seeds(args, EXPERIMENT, cfg, build)


if __name__ == "__main__":
    main()

"""Convex hulls by a pointer network: exact match and area coverage by n, in and out of training (chapter 7).

The experiment of Vinyals et al. (2015, table 1) on a laptop's budget. One ``seqmem.PointerNetwork``
(points embedded by a Linear of E = H, an LSTM encoder and an LSTM decoder of H units, additive
scores of A = H, and the learned end position) trains on ``tasks.convex_hulls``: every batch draws
one n uniform in 5 ... 10 and B point sets of n points uniform in the unit square, labelled by
Andrew's monotone chain (counter-clockwise from the lowest index, then the end position).
Teacher forcing, Adam, gradients clipped to norm 2 (the paper's clip); the learning rate drops
by ``--decay`` after 60% and again after 85% of the steps. Every ``--eval-every``
steps the model decodes a validation set (``--val-size`` sets of n in 5 ... 10, padded together,
seed 20_000); the parameters of the best validation exact match are the ones tested.

The test: ``--test-size`` fresh sets of each n in 5, 10, 20 (seed 10_000 + n; n = 20 was never
trained on), decoded unconstrained as in the paper, greedily and by beam search of width
``--beam``. Per n and decoder: exact match (``seqmem.pointer.hull_exact``: the true hull as a
cyclic sequence, counter-clockwise), mean area coverage (``hull_area_coverage``: an invalid
polygon scores 0) and the fraction of valid polygons. The paper's numbers (its LSTM of 512 units,
trained on 1M sets per n): 92.0% exact and 99.9% area at n = 5, 87.0% and 99.7% at n = 10 (trained
at 50: 69.6% and 99.9%); its out-of-distribution n = 20 numbers come from other training n.

Usage (from the repository root):

    python book/07-pointer-networks/experiments/convex_hull.py          # the chapter's run: 40000 steps (about 40 min of one idle CPU thread)
    python book/07-pointer-networks/experiments/convex_hull.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and the run.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import seqmem
from seqmem import pointer
from seqmem.experiment import Record
from seqmem.tasks import geometry

HERE = Path(__file__).resolve().parent
EXPERIMENT = "planar convex hulls by a pointer network: exact match and area coverage at n = 5, 10 and 20"
PAPER = {"5": {"exact": 0.920, "area": 0.999}, "10": {"exact": 0.870, "area": 0.997}}


def hull_loss(model, data):
    return pointer.pointer_loss(model(data.points, data.lengths, data.targets), data.targets)


def learning_rate(cfg: dict, step: int) -> float:
    """lr, times decay after 60% of the steps, times decay again after 85%."""
    return cfg["lr"] * cfg["decay"] ** ((step >= 0.6 * cfg["steps"]) + (step >= 0.85 * cfg["steps"]))


def batch_for(cfg: dict, generator: torch.Generator, optimizer: torch.optim.Optimizer, step: int):
    """One training batch: one n uniform in train_n for the whole batch (no padding); sets the step's lr."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, step)
    lo, hi = cfg["train_n"]
    n = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    return geometry.convex_hulls(cfg["batch_size"], n, generator)


def hull_scores(data, decoded: list) -> dict:
    """Exact match, mean area coverage and the fraction of valid polygons of decoded hulls."""
    exact, area, valid = [], [], []
    for b, seq in enumerate(decoded):
        n, t = int(data.lengths[b]), int(data.target_lengths[b])
        pts, hull = data.points[b, :n].double(), data.targets[b, :t - 1].tolist()
        exact.append(pointer.hull_exact(seq, hull))
        valid.append(pointer.valid_polygon(pts, seq))
        area.append(pointer.hull_area_coverage(pts, seq, hull))
    size = len(decoded)
    return {"exact": sum(exact) / size, "area": sum(area) / size, "valid": sum(valid) / size}


def decode(model, data, how: str, beam: int) -> list:
    if how == "greedy":
        return pointer.greedy(model, data.points, data.lengths)
    return pointer.beam_search(model, data.points, data.lengths, beam_size=beam)


def run(cfg: dict, seed: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = pointer.PointerNetwork(2, cfg["hidden_size"], end=True)
    generator = torch.Generator().manual_seed(seed)
    val = geometry.convex_hulls(cfg["val_size"], tuple(cfg["train_n"]), torch.Generator().manual_seed(20_000))
    best = {"exact": -1.0}

    def evaluate():  # validation exact match, greedy; keep the best parameters
        model.eval()
        exact = hull_scores(val, pointer.greedy(model, val.points, val.lengths))["exact"]
        model.train()
        if exact > best["exact"]:
            best.update(exact=exact, state={k: v.clone() for k, v in model.state_dict().items()})
        return exact

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    trained = train(model, optimizer, lambda step: batch_for(cfg, generator, optimizer, step), hull_loss, cfg, evaluate)
    model.load_state_dict(best["state"])
    model.eval()
    results = {}
    for n in cfg["test_n"]:
        test = geometry.convex_hulls(cfg["test_size"], n, torch.Generator().manual_seed(10_000 + n))
        results[str(n)] = {how: hull_scores(test, decode(model, test, how, cfg["beam"])) for how in ("greedy", "beam")}
    return summary(seed, results, model, trained, "val_exact", max)


def train(model, optimizer, batch, loss, cfg: dict, evaluate) -> dict:
    """``seqmem.fit`` with this chapter's settings (clipping, evaluation every eval_every steps): its
    history and the wall and CPU seconds of the training, with the time it started."""
    start, cpu = time.perf_counter(), time.process_time()
    history = seqmem.fit(model, batch, loss, steps=cfg["steps"], optimizer=optimizer, clip_grad_norm=cfg["clip"],
                         evaluate=evaluate, eval_every=cfg["eval_every"], progress=False)
    return {"history": history, "start": start, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu}


def summary(seed: int, results: dict, model, trained: dict, val_name: str, best) -> dict:
    """A run's row of the record: the test results, the validation curve (``best`` of it: max or
    min), the final training loss, the size of the model and the times."""
    history = trained["history"]
    return {"seed": seed, "results": results,
            "val_steps": [step for step, _ in history.evals], val_name: [e for _, e in history.evals],
            "best_step": best(history.evals, key=lambda e: e[1])[0],
            "final_loss": float(sum(history.loss[-50:]) / len(history.loss[-50:])),
            "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(trained["seconds"], 1),
            "train_cpu_seconds": round(trained["cpu_seconds"], 1),
            "seconds": round(time.perf_counter() - trained["start"], 1)}


def arguments(description: str, steps: int, eval_every: int, out: Path, what: str, argv=None) -> argparse.Namespace:
    """The options both pointer experiments take (``--quick``: 40 steps, 50 validation and test ``what``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=0)
    if what == "instances":
        parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--eval-every", type=int, default=eval_every)
    parser.add_argument("--val-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--decay", type=float, default=0.3)
    parser.add_argument("--clip", type=float, default=2.0)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help=f"a tiny run: 40 steps, 50 validation and test {what}")
    parser.add_argument("--out", default=str(out))
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.eval_every, args.val_size, args.test_size = 40, 20, 50, 50
    return args


def main(argv=None):
    args = arguments(__doc__.split("\n\n")[0], 40000, 2000, HERE / "convex_hull.json", "sets", argv)
    cfg = {"steps": args.steps, "eval_every": args.eval_every, "val_size": args.val_size, "train_n": [5, 10],
           "test_n": [5, 10, 20],
           **{k: getattr(args, k) for k in ("batch_size", "hidden_size", "lr", "decay", "clip", "beam", "test_size")},
           "optimizer": "Adam", "task": "tasks.convex_hulls, one n uniform in train_n per batch",
           "model": "PointerNetwork(2, hidden_size, end=True): Linear embedding, LSTM encoder and decoder, "
                    "AdditiveScore(H, H, H)",
           "decoding": "unconstrained; greedy, and beam search of width beam; max_len n + 1",
           "test_set": "test_size point sets of each n in test_n, seed 10000 + n",
           "selection": "the parameters of the best validation exact match (val_size sets of n in 5-10, seed 20000)"}
    record = Record(args.out, EXPERIMENT, cfg, [args.seed], key=("seed",), order=lambda r: r["seed"],
                    device="cpu, 1 thread", paper=PAPER)
    row = run(cfg, args.seed)
    record.add(row)
    for n, by in row["results"].items():
        print(f"n = {n:>2}: " + "  ".join(f"{how} exact {s['exact']:.3f} area {s['area']:.4f} valid {s['valid']:.3f}"
                                         for how, s in by.items()), flush=True)
    print(f"({row['seconds']:.0f} s, best validation step {row['best_step']})")


if __name__ == "__main__":
    main()

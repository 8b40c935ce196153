"""The planar travelling salesman at n = 5 by a pointer network: mean tour length against the optimum (chapter 7).

Vinyals et al.'s (2015) table 2, first row: on 5 cities uniform in the unit square the optimal
tours average 2.12 and their Ptr-Net's 2.12 (second row, ``--n 10``: 2.87 and 2.88). One
``seqmem.PointerNetwork`` without an end position (a tour has n cities; it stops after n) trains
on ``tasks.tsp_problems``: fresh batches of ``--batch-size`` instances of 5 cities, labelled by
Held-Karp (``tasks.geometry.held_karp_batch``: the canonical tour, from city 0, its second city's
index below its last's), teacher forcing with the chosen cities masked (``constrained``), Adam,
gradients clipped to norm 2, the learning rate dropping by ``--decay`` after 60% and 85% of the
steps. Every ``--eval-every`` steps the model decodes a validation set (``--val-size`` instances,
seed 20_000); the parameters of the best validation mean tour length are the ones tested.

The test: ``--test-size`` fresh instances (seed 10_000 + n), decoded constrained (always a tour)
greedily and by beam search of width ``--beam``: the mean tour length (``seqmem.pointer.tour_length``),
the mean optimality gap and the fraction of optimal tours; and decoded unconstrained (greedy), the
fraction of valid tours (an invalid one is counted, never repaired) and the mean length of the valid.

Usage (from the repository root):

    python book/07-pointer-networks/experiments/tsp.py          # the chapter's run
    python book/07-pointer-networks/experiments/tsp.py --quick --out /tmp/quick.json
    python book/07-pointer-networks/experiments/tsp.py --n 10 --steps 12000 --eval-every 1000 \
        --out book/07-pointer-networks/experiments/tsp10.json   # table 2's second row, shortened
"""
from __future__ import annotations

from pathlib import Path

import torch

from seqmem import pointer
from seqmem.experiment import Record
from seqmem.tasks import geometry

from convex_hull import arguments, learning_rate, summary, train  # the hulls' schedule, options and record

HERE = Path(__file__).resolve().parent
EXPERIMENT = "the planar TSP at n = {n} by a pointer network: mean tour length against Held-Karp's optimum"
PAPER = {"5": {"optimal": 2.12, "ptr_net": 2.12}, "10": {"optimal": 2.87, "ptr_net": 2.88}}  # table 2


def tsp_loss(model, data):
    return pointer.pointer_loss(model(data.points, data.lengths, data.targets, constrained=True), data.targets)


def tour_scores(data, tours: list) -> dict:
    """Mean length, gap and fraction optimal of valid tours; the fraction valid. Invalid tours are not repaired."""
    valid, lengths, gaps = 0, [], []
    for b, tour in enumerate(tours):
        n = int(data.lengths[b])
        if not pointer.valid_tour(tour, n):
            continue
        valid += 1
        lengths.append(pointer.tour_length(data.points[b, :n].double(), tour))
        gaps.append(pointer.optimality_gap(lengths[-1], float(data.optimal[b])))
    size = len(tours)
    mean = (lambda xs: sum(xs) / len(xs)) if lengths else (lambda xs: None)  # no valid tour: no length
    return {"valid": valid / size, "mean_length": mean(lengths), "mean_gap": mean(gaps),
            "optimal": sum(g < 1e-9 for g in gaps) / size}  # float64 throughout: an optimal tour's gap is ~1e-16


def run(cfg: dict, seed: int) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    n = cfg["n"]
    model = pointer.PointerNetwork(2, cfg["hidden_size"], end=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = torch.Generator().manual_seed(seed)
    val = geometry.tsp_problems(cfg["val_size"], n, torch.Generator().manual_seed(20_000))
    best = {"length": float("inf")}

    def evaluate():  # validation mean tour length, greedy and constrained; keep the best parameters
        model.eval()
        length = tour_scores(val, pointer.greedy(model, val.points, val.lengths, constrained=True))["mean_length"]
        model.train()
        if length < best["length"]:
            best.update(length=length, state={k: v.clone() for k, v in model.state_dict().items()})
        return length

    def batch(step):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        return geometry.tsp_problems(cfg["batch_size"], n, generator)

    trained = train(model, optimizer, batch, tsp_loss, cfg, evaluate)
    model.load_state_dict(best["state"])
    model.eval()
    test = geometry.tsp_problems(cfg["test_size"], n, torch.Generator().manual_seed(10_000 + n))
    results = {
        "optimal_mean_length": float(test.optimal.mean()),
        "greedy": tour_scores(test, pointer.greedy(model, test.points, test.lengths, constrained=True)),
        "beam": tour_scores(test, pointer.beam_search(model, test.points, test.lengths, beam_size=cfg["beam"],
                                                      constrained=True)),
        "greedy_unconstrained": tour_scores(test, pointer.greedy(model, test.points, test.lengths)),
    }
    return summary(seed, results, model, trained, "val_mean_length", min)


def main(argv=None):
    args = arguments(__doc__.split("\n\n")[0], 5000, 500, HERE / "tsp.json", "instances", argv)
    cfg = {"steps": args.steps, "eval_every": args.eval_every, "val_size": args.val_size,
           **{k: getattr(args, k) for k in ("n", "batch_size", "hidden_size", "lr", "decay", "clip", "beam",
                                            "test_size")},
           "optimizer": "Adam", "task": "tasks.tsp_problems (Held-Karp labels, canonical tours)",
           "model": "PointerNetwork(2, hidden_size, end=False), trained with the chosen cities masked",
           "decoding": "constrained greedy and beam search; unconstrained greedy for validity",
           "test_set": "test_size instances, seed 10000 + n",
           "selection": "the parameters of the best validation mean tour length (val_size instances, seed 20000)"}
    record = Record(args.out, EXPERIMENT.format(n=args.n), cfg, [args.seed], key=("seed",), order=lambda r: r["seed"],
                    device="cpu, 1 thread", paper=PAPER)
    row = run(cfg, args.seed)
    record.add(row)
    r = row["results"]
    show = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    print(f"optimal {r['optimal_mean_length']:.4f}; " + "  ".join(
        f"{how}: length {show(r[how]['mean_length'])} gap {show(r[how]['mean_gap'])} optimal {r[how]['optimal']:.3f} "
        f"valid {r[how]['valid']:.3f}" for how in ("greedy", "beam", "greedy_unconstrained")))
    print(f"({row['seconds']:.0f} s, best validation step {row['best_step']})")


if __name__ == "__main__":
    main()

"""The Neural Programmer on tables of integers, with and without gradient noise (chapter 9).

Neelakantan, Le and Sutskever (2016) at a laptop's size: ``seqmem.NeuralProgrammer`` (d = 64, T = 5
steps, 11 operations) trained from the answers alone on ``tasks.table_questions``, tables of 8 rows
of distinct integers 0 ... 49 and the 11 single-column question kinds (``--columns 1``), or 3
columns and the 13 kinds with the two that compare one column and answer from another
(``--columns 3``, the multi-column variant). Every run: Adam with learning rate ``--lr``, batches
of ``--batch-size`` fresh questions, ``--steps`` steps, gradients clipped to norm 1, and

- the paper's loss, Huber (delta 10) on the scalar answers and 50 x the cells' cross-entropy on
  the lookups, with the scalar questions' lookups scored too, against no cells (``empty_lookup``);
- comparisons that pass the pivot a gradient (``--width``, a sigmoid's width in the table's units,
  10 by default; their values stay exact), so that the attention over the question's numbers can
  learn;
- an entropy bonus on the choice of operation, ``--entropy`` x H(alpha_op), falling linearly to 0
  at half the steps: it keeps every operation in play while the selector is young;
- annealed Gaussian noise on the gradient, variance eta / (1 + t)^0.55 (``--etas``; 0: none).

A validation every ``--eval-every`` steps on 1000 questions (seed 5000) keeps the parameters of the
best accuracy of the *hard* program (the argmax operation, column and pivot at every step, run
exactly); then the test on ``--test-size`` fresh questions (seed 6000): the accuracy of the soft
model and of its hard program, by kind, and the programs written for the first questions.

Usage (from the repository root):

    python book/09-act-neural-programmer/experiments/programmer_tables.py                  # single column
    python book/09-act-neural-programmer/experiments/programmer_tables.py --columns 3 --merge   # multi-column
    python book/09-act-neural-programmer/experiments/programmer_tables.py --quick --out /tmp/quick.json
    python book/09-act-neural-programmer/experiments/programmer_tables.py --combine /tmp/a.json /tmp/b.json

The results file (JSON, a ``seqmem.experiment.Record``) has one run per columns, eta and seed.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from seqmem import programmer as P
from seqmem import tasks
from seqmem.experiment import Record, add_training_arguments, apply_quick, merge_files

HERE = Path(__file__).resolve().parent
EXPERIMENT = "the Neural Programmer on tables of integers: single and multi-column, with and without gradient noise"
VAL_SEED, TEST_SEED = 5000, 6000
KINDS = tasks.TABLE_KINDS + tasks.MULTI_COLUMN_KINDS
SHOWN = 12  # the test questions whose programs the record keeps


def accuracy_by_kind(right: torch.Tensor, kinds: torch.Tensor) -> dict:
    return {KINDS[k]: float(right[kinds == k].float().mean()) for k in kinds.unique().tolist()}


def evaluate(net, batch) -> dict:
    with torch.no_grad():
        soft, hard = net(batch), net(batch, hard=True)
    right_soft, right_hard = P.answers_correct(soft, batch), P.answers_correct(hard, batch)
    return {"soft": float(right_soft.float().mean()), "hard": float(right_hard.float().mean()),
            "soft_by_kind": accuracy_by_kind(right_soft, batch.kinds),
            "hard_by_kind": accuracy_by_kind(right_hard, batch.kinds), "_hard": hard, "_right": right_hard}


def programs(batch, hard, right) -> list:
    ops, cols = P.chosen_programs(hard)
    vocab = tasks.table_vocab()
    shown = []
    for b in range(min(SHOWN, batch.tables.shape[0])):
        columns = [vocab.tokens[int(i)] for i in batch.columns[b]]
        shown.append({"question": tasks.table_question_text(batch, b), "kind": KINDS[int(batch.kinds[b])],
                      "table": batch.tables[b].int().tolist(), "columns": columns,
                      "program": [[P.OPERATIONS[int(o)], columns[int(c)]] for o, c in zip(ops[b], cols[b])],
                      "pivots": hard.pivots[b].tolist(), "scalar": float(hard.scalar[b]),
                      "answer": float(batch.scalar_answers[b]) if batch.is_scalar[b] else
                      batch.lookup_answers[b].nonzero().tolist(), "right": bool(right[b])})
    return shown


def run(columns: int, eta: float, seed: int, cfg: dict) -> dict:
    torch.manual_seed(seed)
    net = P.NeuralProgrammer(len(tasks.table_vocab()), d=cfg["d"], steps=cfg["program_steps"], width=cfg["width"])
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    g, noise = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(10_000 + seed)
    sizes = dict(rows=cfg["rows"], columns=columns, high=cfg["high"])
    val = tasks.table_questions(cfg["val_size"], generator=torch.Generator().manual_seed(VAL_SEED), **sizes)
    start, cpu_start = time.perf_counter(), time.process_time()
    curve, best, best_state, losses = [], -1.0, None, []
    for step in range(1, cfg["steps"] + 1):
        batch = tasks.table_questions(cfg["batch_size"], generator=g, **sizes)
        out = net(batch)
        loss = P.programmer_loss(out, batch, cfg["delta"], cfg["lookup_weight"], empty_lookup=True)
        bonus = cfg["entropy"] * max(0.0, 1 - 2 * step / cfg["steps"])
        if bonus:
            a = out.alpha_op.clamp_min(1e-9)
            loss = loss + bonus * (a * a.log()).sum(-1).mean()  # minus bonus x the entropy
        opt.zero_grad()
        loss.backward()
        P.add_gradient_noise(net.parameters(), step, eta, generator=noise)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % cfg["eval_every"] == 0:
            score = evaluate(net, val)
            curve.append({"step": step, "soft": score["soft"], "hard": score["hard"],
                          "train_loss": float(np.mean(losses[-cfg["eval_every"]:]))})
            print(f"columns {columns} eta {eta:g} seed {seed}, step {step}: validation hard {score['hard']:.3f} "
                  f"soft {score['soft']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
            if score["hard"] > best:
                best, best_state = score["hard"], {k: v.clone() for k, v in net.state_dict().items()}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    net.load_state_dict(best_state)
    test_batch = tasks.table_questions(cfg["test_size"], generator=torch.Generator().manual_seed(TEST_SEED), **sizes)
    test = evaluate(net, test_batch)
    shown = programs(test_batch, test.pop("_hard"), test.pop("_right"))
    return {"columns": columns, "eta": eta, "seed": seed, "test": test, "programs": shown, "curve": curve,
            "best_step": max(curve, key=lambda c: c["hard"])["step"],
            "parameters": sum(p.numel() for p in net.parameters()),
            "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1)}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[1])
    parser.add_argument("--etas", type=float, nargs="+", default=[0.0, 0.1])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--merge", action="store_true", help="add these runs to the existing --out")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--high", type=int, default=50)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--program-steps", type=int, default=5)
    parser.add_argument("--width", type=float, default=10.0)
    parser.add_argument("--entropy", type=float, default=1.0)
    parser.add_argument("--delta", type=float, default=10.0)
    parser.add_argument("--lookup-weight", type=float, default=50.0)
    add_training_arguments(parser, steps=20_000, eval_every=1000, batch_size=64, lr=1e-3, val_size=1000,
                           test_size=2000, out=HERE / "programmer_tables.json", what="test questions")
    return apply_quick(parser.parse_args(argv))


def main(argv=None):
    args = arguments(argv)
    key = ("columns", "eta", "seed")
    if args.combine:
        data = merge_files(args.out, args.combine, key=key)
        print(f"{args.out}: {len(data['runs'])} runs, seeds {data['seeds']}")
        return
    torch.set_num_threads(1)
    names = ("rows", "high", "d", "program_steps", "width", "entropy", "delta", "lookup_weight", "steps",
             "eval_every", "batch_size", "lr", "val_size", "test_size")
    cfg = {name: getattr(args, name) for name in names}
    cfg.update(task="tasks.table_questions(batch_size, rows, columns, high): every kind of the columns",
               model="seqmem.NeuralProgrammer(d, program_steps, width)",
               loss="programmer_loss(delta, lookup_weight, empty_lookup=True) - entropy bonus x H(alpha_op), "
                    "the bonus falling linearly to 0 at steps / 2",
               optimizer_settings="Adam(lr), gradient noise eta / (1 + t)^0.55, clipping to norm 1",
               selection="the parameters of the best hard-program accuracy (val_size questions, seed 5000)",
               test_set="test_size questions, seed 6000")
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=key,
                    order=lambda r: (r["columns"], r["eta"], r["seed"]), merge=args.merge, device="cpu, 1 thread")
    for columns in args.columns:
        for eta in args.etas:
            for seed in args.seeds:
                row = run(columns, float(eta), seed, cfg)
                record.add(row)
                t = row["test"]
                print(f"columns {columns} eta {eta:g} seed {seed}: test hard {t['hard']:.4f} soft {t['soft']:.4f}, "
                      f"{row['train_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()

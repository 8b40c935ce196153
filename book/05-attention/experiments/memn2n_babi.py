"""End-to-end memory networks on bAbI-style tasks 1, 2 and 16: chapter 5's "paper vs ours" table.

For each task, a 3-hop ``seqmem.MemN2N`` (d = 20, memory of the 50 most recent sentences, adjacent
tying, position encoding, temporal encoding) trains on 1,000 stories of
``seqmem.tasks.babi_stories`` as Sukhbaatar et al. (2015, section 4.2) train: 10 % of them (100)
held out for validation, SGD on the cost summed (not averaged) over minibatches of 32, learning rate
0.01 halved every 25 of 100 epochs, each weight matrix's gradient clipped to norm 40, linear start
(LS, at learning rate 0.005) for 20 epochs (``--ls-epochs``; 0: the paper's rule, until the
validation loss stops falling), after which the softmax comes back and the whole 100-epoch schedule
runs again from learning rate 0.01 (the paper's "the softmax layers were re-inserted and training
recommenced", read literally; ``--no-recommence`` counts the LS epochs within the 100 instead),
random noise (RN, 10 % empty memories). It is tested on 1,000 stories of the held-out split. Each
task is trained from ``--restarts`` initialisations and the run with the lowest training error is
the one reported (the paper's choice, of 10); every run is recorded.

Differences from the paper: the stories are generated here, not bAbI's files (the same lexicons
and rules, but other stories and other length distributions), so the paper's numbers are a
reference, not a target; fewer restarts than the paper's 10 (``--restarts``, for the time).

The chosen task-16 network's parameters are saved beside the results (``memn2n_babi_task16.pt``,
a few tens of kB), so that the chapter can draw its hop table over the lecture's story
(``seqmem.tasks.SLIDE_STORY``, "Brian is a frog. ... What color is Greg?") without training it;
the record also keeps every task-16 run's attention over that story.

Usage (from the repository root):

    python book/05-attention/experiments/memn2n_babi.py            # the chapter's table, about 7 minutes
    python book/05-attention/experiments/memn2n_babi.py --quick    # a smoke test, into /tmp

Task 16 and linear start (measured before this recipe became the default): with the paper's rule and
the LS epochs counted within the 100 (``--ls-epochs 0 --no-recommence``), LS stops after 2 to 6
epochs (the validation loss of 100 stories is noisy), and none of 15 task-16 restarts (seeds 0-14)
fitted its training set (training error 12-30 %, test 32-44 %); the same network trained longer does
learn the rule (seed 1, 300 epochs halved every 75: 0.0 % test), so the model is right and the
recipe too short. Recommencing the schedule after the paper's rule is not enough (``--ls-epochs 0``:
LS 2-4 epochs, task-16 seeds 0-4 training error 11-26 %, test 32-42 %); linear start for a fixed 20
epochs, then the whole schedule again, solved task 16 in 3 of seeds 0-4 in the probes (test error
35.0, 1.6, 35.3, 0.0, 0.2 %; training error 9.6, 0, 13.9, 0, 0 %). The 20 epochs are our choice from
those probes, not a number from the paper. The recorded table ran as two processes side by side,
``--tasks 16 1 --out A`` and ``--tasks 2 --out B``, then ``--merge-from A B --out
memn2n_babi.json``; each run is seeded on its own, so the split does not change the results.

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and every run; it is rewritten after each run.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

import seqmem
from seqmem import memn2n
from seqmem.experiment import Record
from seqmem.tasks import babi

HERE = Path(__file__).resolve().parent
EXPERIMENT = "end-to-end memory networks (3 hops, PE LS RN, adjacent tying) on bAbI-style tasks, 1k training stories"

#: Sukhbaatar et al. (2015), Table 1, test error (%) with 1k training examples, 3 hops. The column
#: used is "PE LS RN" of *joint* training (one network for all 20 tasks): 0.0, 11.4, 2.7, checked
#: against two independent third-party transcriptions of that column (not against the paper's PDF).
#: The single-task "PE LS RN" column, which trains as this script does, could not be checked in
#: the sources at hand; the paper's text gives task 16's single-task PE LS error (1.6 %, linear
#: start taking it from PE's 53.6 %), as quoted by a summary of the paper.
PAPER = {"source": "Sukhbaatar et al. 2015, Table 1, 1k training, 3 hops, column 'PE LS RN' of joint training "
                   "(the single-task 'PE LS RN' column could not be verified)",
         "test_error_percent": {"1": 0.0, "2": 11.4, "16": 2.7},
         "single_task_pe_ls_task16_percent": 1.6}


def data(task: int, n_train: int, n_test: int, memory: int):
    """The training, validation (the last 10 % of the training stories) and test stories of
    ``task``, from their own seeds, encoded."""
    vocab = babi.babi_vocab(task)
    stories = babi.babi_stories(task, n_train, "train", torch.Generator().manual_seed(task))
    test = babi.babi_stories(task, n_test, "test", torch.Generator().manual_seed(10_000 + task))
    n_val = n_train // 10
    return (vocab, babi.encode_stories(stories[: n_train - n_val], vocab, memory),
            babi.encode_stories(stories[n_train - n_val:], vocab, memory), babi.encode_stories(test, vocab, memory))


def error(model, batch) -> float:
    """Test error in percent."""
    with torch.no_grad():
        logits = model(batch.stories, batch.queries, batch.mask).logits
    return round(100 * (1 - seqmem.metrics.accuracy(logits, batch.answers)), 2)


def support_mass(model, batch) -> list[float]:
    """Per hop, the mean attention on the supporting facts."""
    with torch.no_grad():
        attention = model(batch.stories, batch.queries, batch.mask).attention  # (B, K, M)
    return [round(p, 3) for p in (attention * batch.support[:, None]).sum(-1).mean(0).tolist()]


def slide_hops(model, vocab, memory: int) -> dict:
    """The chosen task-16 network on the lecture's story: its answer and attention per hop."""
    batch = babi.encode_stories([babi.SLIDE_STORY], vocab, memory)
    with torch.no_grad():
        out = model(batch.stories, batch.queries, batch.mask)
    n = len(babi.SLIDE_STORY.sentences)
    return {"sentences": [" ".join(s) for s in babi.SLIDE_STORY.sentences],
            "prediction": vocab.decode(out.logits.argmax(-1))[0],
            "attention": [[round(p, 3) for p in hop[:n].tolist()] for hop in out.attention[0]]}


def run_one(job: dict) -> dict:
    """Train one network on one task from one initialisation; return its errors."""
    torch.set_num_threads(1)
    cfg, task, seed = job["cfg"], job["task"], job["seed"]
    vocab, train, val, test = data(task, cfg["n_train"], cfg["n_test"], cfg["memory"])
    torch.manual_seed(seed)
    model = memn2n.MemN2N(len(vocab), cfg["dim"], cfg["hops"], cfg["memory"], tying="adjacent")
    start = time.perf_counter()
    fixed_ls = cfg.get("ls_epochs")  # exactly this many LS epochs; None: LS until the validation loss stops falling
    history = memn2n.train_memn2n(model, train, epochs=cfg["epochs"], lr=cfg["lr"], optimizer="sgd",
                                  anneal_every=cfg["anneal_every"],
                                  linear_start_epochs=min(fixed_ls or cfg["epochs"], cfg["epochs"]),
                                  linear_start_lr=cfg["ls_lr"], validation=None if fixed_ls else val,
                                  random_noise=cfg["noise"],
                                  clip_grad_norm=40.0, clip_each=True, reduction="sum",
                                  recommence=cfg.get("recommence", False),
                                  generator=torch.Generator().manual_seed(100 + seed))
    row = {"task": task, "seed": seed, "train_error": error(model, train), "validation_error": error(model, val),
           "test_error": error(model, test), "linear_start_epochs": history.linear_start_epochs,
           "support_attention": support_mass(model, test), "final_loss": history.loss[-1],
           "seconds": round(time.perf_counter() - start, 1)}
    if task == 16:
        row["slide_story"] = slide_hops(model, vocab, cfg["memory"])
    return row, model


def summary(runs: list[dict]) -> dict:
    """Per task, the run with the lowest training error (the paper's choice; a tie goes to the lower
    seed) and its test error."""
    best = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        key = str(r["task"])
        if key not in best or r["train_error"] < best[key]["train_error"]:
            best[key] = {"seed": r["seed"], "train_error": r["train_error"], "test_error": r["test_error"]}
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", type=int, default=[1, 2, 16], choices=sorted(babi.BABI_TASKS))
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--anneal-every", type=int, default=25)
    parser.add_argument("--ls-lr", type=float, default=0.005)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--ls-epochs", type=int, default=20,
                        help="linear start for exactly this many epochs; 0: until the validation loss stops falling")
    parser.add_argument("--recommence", action=argparse.BooleanOptionalAction, default=True,
                        help="after linear start, run the whole --epochs schedule again from --lr (default)")
    parser.add_argument("--merge-from", nargs="+", default=None, metavar="JSON",
                        help="only merge these results files (the same config, e.g. --tasks run as parallel "
                             "processes) into --out; no training")
    parser.add_argument("--quick", action="store_true", help="200 stories, 3 epochs, 1 restart, into /tmp")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.restarts = 200, 200, 3, 1
    out = args.out or ("/tmp/memn2n_babi_quick.json" if args.quick else str(HERE / "memn2n_babi.json"))
    cfg = {k: getattr(args, k) for k in ("n_train", "n_test", "epochs", "anneal_every", "ls_lr", "noise", "lr")}
    cfg = {**cfg, "ls_epochs": args.ls_epochs or None, "recommence": args.recommence}
    cfg = {**cfg, "dim": 20, "hops": 3, "memory": 50, "tying": "adjacent", "position_encoding": True,
           "temporal_encoding": True, "optimizer": "SGD", "cost": "summed over the minibatch", "batch_size": 32,
           "clip_grad_norm": "40, each weight matrix on its own", "n_validation": "last 10 % of n_train",
           "linear_start": (f"{args.ls_epochs} epochs" if args.ls_epochs else
                            "until the validation loss stops falling (checked after every epoch)")
                           + (", then the whole schedule again from lr (the paper's 'training recommenced')"
                              if args.recommence else ", counted within the schedule's epochs"),
           "data_seeds": "train: task, test: 10000 + task", "model_seed": "seed", "order_seed": "100 + seed"}
    jobs = [{"cfg": cfg, "task": t, "seed": r} for t in sorted(args.tasks, key=lambda t: t != 2)
            for r in range(args.restarts)]  # task 2 first: the longest stories
    record = Record(out, EXPERIMENT, cfg, list(range(args.restarts)), key=("task", "seed"),
                    order=lambda r: (r["task"], r["seed"]), device="cpu, 1 thread, one run at a time", paper=PAPER)
    state = Path(out).with_name(Path(out).stem + "_task16.pt")
    if args.merge_from:
        return merge(args.merge_from, out)
    for job in jobs:  # one run at a time, one thread
        row, model = run_one(job)
        best = summary(record.runs + [row])
        if row["task"] == 16 and best["16"]["seed"] == row["seed"]:  # the task-16 network the table reports
            torch.save({"state_dict": model.state_dict(), "seed": row["seed"], "config": cfg}, state)
        record.data["best_by_train_error"] = best
        record.add(row)
        print(f"task {row['task']:>2} seed {row['seed']}: train error {row['train_error']:5.1f} %, "
              f"test error {row['test_error']:5.1f} %, LS {row['linear_start_epochs']} epochs "
              f"({row['seconds']:.0f} s)", flush=True)


def merge(paths: list[str], out: str) -> None:
    """Merge results files of the same config (parts run at the same time, e.g. one process per
    ``--tasks``) into ``out``: their runs and commands, the best run per task again, and as wall time
    the longest part's (they ran side by side); the chosen task-16 network is copied beside ``out``."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    if any(p["config"] != parts[0]["config"] for p in parts):
        raise SystemExit("the files to merge have different configs")
    runs = {(r["task"], r["seed"]): r for p in parts for r in p["runs"]}
    data = {**parts[0], "seeds": sorted({s for p in parts for s in p["seeds"]}),
            "commands": [c for p in parts for c in p["commands"]],
            "wall_seconds": max(p["wall_seconds"] for p in parts), "finished": max(p["finished"] for p in parts),
            "runs": [runs[k] for k in sorted(runs)]}
    data["best_by_train_error"] = summary(data["runs"])
    Path(out).write_text(json.dumps(data, indent=1) + "\n")
    print(f"{len(data['runs'])} runs from {len(paths)} files into {out}")
    for p in paths:  # the chosen task-16 network, saved beside its part
        state = Path(p).with_name(Path(p).stem + "_task16.pt")
        if "16" in data["best_by_train_error"] and state.exists() \
                and torch.load(state, weights_only=True)["seed"] == data["best_by_train_error"]["16"]["seed"]:
            shutil.copyfile(state, Path(out).with_name(Path(out).stem + "_task16.pt"))
            print(f"task-16 network from {state}")


if __name__ == "__main__":
    main()

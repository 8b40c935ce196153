"""Copy by a Neural Turing Machine: bit errors per sequence against length, trained on 1-20, tested to 40 (chapter 8).

The experiment of Graves et al. (2014, section 4.1, figures 3-4) on a laptop's budget. One
``seqmem.NTMCell`` (an LSTM controller of 100 units, a memory of N = 128 slots of W = 20, one read
head and one write head, shifts -1, 0, +1: the sizes of the paper and of the public reference
implementations) trains on ``tasks.copy_sequences``: B sequences of 8-bit vectors, each of a
length uniform in 1 ... 20, padded together. The loss is the binary cross-entropy summed over an
episode's recall bits (``tasks.sequence_cost``, in nats), averaged over the batch.

Optimisation: Adam with learning rate 1e-3 and the gradient's total norm clipped to 10 (the
chapter's run: it converges within a few thousand steps), or, as in the public reference
implementations (loudinthecloud/pytorch-ntm and the NTM paper), RMSprop with learning rate 1e-4,
momentum 0.9 and smoothing 0.95 (``--optimizer rmsprop``), each gradient element clipped to
[-10, 10] (``--clip-value``). Every ``--eval-every`` steps the model is scored on a
validation set (``--val-size`` sequences of lengths 1-20, seed 20_000): the mean cost per sequence
in bits (the paper's figure 3) and bit errors per sequence; the parameters of the lowest
validation cost are the ones tested.

The test: ``--test-size`` fresh sequences of each length L in 1 ... 40 (seed 10_000 + L; lengths
above 20 were never trained on), scored by bit errors per sequence (``tasks.bit_errors``: the
output bits thresholded at 1/2, compared with the targets over the L recall steps; chance is
4 L) and by cost per sequence in bits. The paper shows that its NTM copies sequences far
longer than those it trained on with few errors, where an LSTM fails beyond 20 (figure 4).

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/ntm_copy.py --seeds 0 1 2        # the chapter's run (CPU, 1 thread)
    python book/08-ntm-dnc/experiments/ntm_copy.py --seeds 3 --merge    # one more seed into the same file
    python book/08-ntm-dnc/experiments/ntm_copy.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and the run: the training and validation curves, the test by
length, the training's steps per second.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import seqmem
from seqmem import ntm, tasks
from seqmem.experiment import Record

HERE = Path(__file__).resolve().parent
EXPERIMENT = "copy by a Neural Turing Machine: bit errors per sequence by length 1-40, trained on lengths 1-20"
N_BITS = 8


def build(cfg: dict, device) -> ntm.NTMCell:
    """The NTM of the configuration, on ``device``: 8 bits and a delimiter in, 8 bits out."""
    return ntm.NTMCell(N_BITS + 1, N_BITS, controller_size=cfg["controller_size"], memory_size=cfg["memory_size"],
                       word_size=cfg["word_size"], read_heads=cfg["read_heads"], controller=cfg["controller"]).to(device)


def copy_loss(model, batch):
    """The mean over the batch of each episode's recall cross-entropy (nats), with bit errors logged."""
    ys, _ = seqmem.unroll(model, batch.inputs)
    loss = tasks.sequence_cost(ys, batch.targets, batch.mask, bits=False).mean()
    return loss, {"bit_errors": float(tasks.bit_errors(ys.detach(), batch.targets, batch.mask).mean())}


def clip_values(model, limit: float) -> None:
    """Clip every gradient element to [-limit, limit] as it is computed (the reference implementations'
    clipping), by a hook on each parameter: the ``.grad`` that the optimizer reads is clipped."""
    for p in model.parameters():
        p.register_hook(lambda grad: grad.clamp(-limit, limit))


def optimizer_for(cfg: dict, model) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg["lr"], momentum=0.9, alpha=0.95)
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"])


@torch.no_grad()
def score(model, batch) -> dict:
    """Mean cost per sequence in bits and mean bit errors per sequence of one batch."""
    ys, _ = seqmem.unroll(model, batch.inputs)
    return {"cost_bits": float(tasks.sequence_cost(ys, batch.targets, batch.mask).mean()),
            "bit_errors": float(tasks.bit_errors(ys, batch.targets, batch.mask).mean())}


def test_by_length(model, cfg: dict, device) -> dict:
    """Per length L in 1 ... test_max_len: the scores of test_size sequences of length L (seed 10_000 + L)."""
    results = {}
    for L in range(1, cfg["test_max_len"] + 1):
        batch = tasks.copy_sequences(cfg["test_size"], L, L, N_BITS, torch.Generator().manual_seed(10_000 + L),
                                     device=device)
        results[str(L)] = score(model, batch)
    return results


def run(cfg: dict, seed: int, device) -> dict:
    torch.manual_seed(seed)
    model = build(cfg, device)
    if cfg["clip_value"] is not None:
        clip_values(model, cfg["clip_value"])
    generator = torch.Generator().manual_seed(seed)
    lo, hi = cfg["train_len"]
    val = tasks.copy_sequences(cfg["val_size"], lo, hi, N_BITS, torch.Generator().manual_seed(20_000), device=device)
    best, curve = {"cost_bits": float("inf")}, []
    start = time.perf_counter()

    def evaluate():  # validation cost in bits; keep the best parameters
        scores = score(model, val)
        curve.append(scores)
        print(f"step {len(curve) * cfg['eval_every']:>6}: validation cost {scores['cost_bits']:8.3f} bits, "
              f"bit errors {scores['bit_errors']:7.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if scores["cost_bits"] < best["cost_bits"]:
            best.update(scores, state={k: v.clone() for k, v in model.state_dict().items()})
        return scores["cost_bits"]

    cpu = time.process_time()
    history = seqmem.fit(model, lambda step: tasks.copy_sequences(cfg["batch_size"], lo, hi, N_BITS, generator,
                                                                  device=device),
                         copy_loss, steps=cfg["steps"], optimizer=optimizer_for(cfg, model),
                         clip_grad_norm=cfg["clip_norm"], evaluate=evaluate, eval_every=cfg["eval_every"],
                         progress=False)
    train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    model.load_state_dict(best["state"])
    model.eval()
    results = test_by_length(model, cfg, device)
    every = max(1, cfg["steps"] // 500)  # at most 500 points of the training curve
    losses, errors = history.loss, history.logs["bit_errors"]
    return {"seed": seed, "results": results,
            "val_steps": [step for step, _ in history.evals], "val_cost_bits": [c["cost_bits"] for c in curve],
            "val_bit_errors": [c["bit_errors"] for c in curve],
            "best_step": min(history.evals, key=lambda e: e[1])[0],
            "train_steps": list(range(every, cfg["steps"] + 1, every)),
            "train_loss": [sum(losses[i - every:i]) / every for i in range(every, len(losses) + 1, every)],
            "train_bit_errors": [sum(errors[i - every:i]) / every for i in range(every, len(errors) + 1, every)],
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu, 1),
            "steps_per_second": round(cfg["steps"] / train_seconds, 3),
            "seconds": round(time.perf_counter() - start, 1)}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--merge", action="store_true", help="add these seeds' runs to the existing --out")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--test-size", type=int, default=100)
    parser.add_argument("--test-max-len", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--controller", choices=["lstm", "feedforward"], default="lstm")
    parser.add_argument("--controller-size", type=int, default=100)
    parser.add_argument("--memory-size", type=int, default=128)
    parser.add_argument("--word-size", type=int, default=20)
    parser.add_argument("--read-heads", type=int, default=1)
    parser.add_argument("--optimizer", choices=["rmsprop", "adam"], default="adam")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-4 for RMSprop, 1e-3 for Adam")
    clip = parser.add_mutually_exclusive_group()
    clip.add_argument("--clip-value", type=float, default=None, help="clip each gradient element instead")
    clip.add_argument("--clip-norm", type=float, default=10.0, help="clip the gradient's total norm (default 10)")
    parser.add_argument("--device", default="cpu", help="cpu (default, one thread), cuda, ...")
    parser.add_argument("--quick", action="store_true", help="a tiny run: 30 steps, 20 validation and 5 test "
                                                             "sequences per length")
    parser.add_argument("--out", default=str(HERE / "ntm_copy.json"))
    args = parser.parse_args(argv)
    if args.clip_value is not None:
        args.clip_norm = None
    if args.lr is None:
        args.lr = 1e-4 if args.optimizer == "rmsprop" else 1e-3
    if args.quick:
        args.steps, args.eval_every, args.val_size, args.test_size = 30, 15, 20, 5
    return args


def main(argv=None):
    args = arguments(argv)
    torch.set_num_threads(1)
    device = torch.device(args.device)
    cfg = {**{k: getattr(args, k) for k in ("steps", "eval_every", "val_size", "test_size", "test_max_len",
                                            "batch_size", "controller", "controller_size", "memory_size",
                                            "word_size", "read_heads", "optimizer", "lr", "clip_value",
                                            "clip_norm")},
           "train_len": [1, 20], "n_bits": N_BITS,
           "task": "tasks.copy_sequences(batch_size, 1, 20, 8): lengths uniform in 1-20, padded together",
           "model": "NTMCell(9, 8, controller_size, memory_size, word_size, read_heads, controller), shifts -1..1",
           "loss": "tasks.sequence_cost(..., bits=False).mean(): recall cross-entropy per sequence, nats",
           "optimizer_settings": "RMSprop(momentum=0.9, alpha=0.95) or Adam; clip_value: each gradient "
                                 "element to [-clip_value, clip_value]; clip_norm: the total norm",
           "test_set": "test_size sequences of each length 1..test_max_len, seed 10000 + length",
           "selection": "the parameters of the lowest validation cost (val_size sequences of lengths 1-20, "
                        "seed 20000)"}
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("seed",), order=lambda r: r["seed"],
                    merge=args.merge, device=f"{device}, 1 thread" if device.type == "cpu" else str(device))
    for seed in args.seeds:
        row = run(cfg, seed, device)
        record.add(row)
        for L, s in row["results"].items():
            print(f"seed {seed}, length {L:>2}: bit errors per sequence {s['bit_errors']:7.3f}, "
                  f"cost {s['cost_bits']:8.3f} bits")
        print(f"seed {seed}: {row['seconds']:.0f} s, {row['steps_per_second']:.2f} training steps per second, "
              f"best validation step {row['best_step']}", flush=True)

if __name__ == "__main__":
    main()

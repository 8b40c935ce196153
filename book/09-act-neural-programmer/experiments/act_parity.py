"""Parity of 16-bit vectors shown at once: ACT against a one-step RNN and the repeat RNN (chapter 9).

The parity task of Graves (2016, section 3.1) at a laptop's size. A vector of 16 entries, k of them
(k uniform in 1 ... 16) +1 or -1 and the rest 0 (``tasks.parity_vectors``), is shown in one time
step; the target is 1 if the number of +1 entries is odd. The models share one cell, a tanh RNN of
128 units (``seqmem.RNNCell``, Graves's parity network), and a linear read-out to one logit:

- ``act``: ``act.ACTCell`` around the cell, at most ``--max-steps`` ponder steps, trained on the
  cross-entropy plus tau times the ponder cost N + R (``--taus``: a sweep of the time penalty);
- ``rnn``: the cell once, the input without a flag: a fixed one-step RNN of the same size;
- ``repeat``: ``act.RepeatCell`` around the cell, rho ponder steps for every input (``--repeats``),
  the "repeat RNN" of Fojo, Campos and Giro-i-Nieto (2018).

Every model: Adam with learning rate ``--lr``, batches of ``--batch-size`` fresh vectors, ``--steps``
steps, a validation every ``--eval-every`` steps on 2000 vectors (seed 20,000) that keeps the
parameters of the best accuracy; then the test on ``--test-size`` fresh vectors (seed 10,000):
accuracy, by k, and for ACT the mean ponder N(t) + R(t) and N(t), by k, with the correlation of
N(t) + R(t) with k over the test vectors.

Usage (from the repository root):

    python book/09-act-neural-programmer/experiments/act_parity.py                 # everything
    python book/09-act-neural-programmer/experiments/act_parity.py --models act --taus 1e-3 --seeds 0
    python book/09-act-neural-programmer/experiments/act_parity.py --quick --out /tmp/quick.json
    python book/09-act-neural-programmer/experiments/act_parity.py --combine /tmp/a.json /tmp/b.json

Runs side by side (one process per model or seed, one thread each) write one file each;
``--combine`` joins them into ``--out`` (``seqmem.experiment.merge_files``, which records the join).

The results file (JSON, a ``seqmem.experiment.Record``) has one run per model, tau or rho, and seed.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import seqmem
from seqmem import act, tasks
from seqmem.experiment import Record, add_training_arguments, apply_quick, merge_files

HERE = Path(__file__).resolve().parent
EXPERIMENT = "parity of 16-bit vectors shown at once: ACT (a tau sweep), a one-step RNN, the repeat RNN"
VAL_SEED, TEST_SEED = 20_000, 10_000


class ParityNet(nn.Module):
    """A cell applied once to x (B, 1, n) (ACT and the repeat cell ponder inside), then a logit (B,)."""

    def __init__(self, cell: nn.Module):
        super().__init__()
        self.cell = cell
        self.readout = nn.Linear(cell.output_size, 1)

    def forward(self, x: torch.Tensor):
        """Logits (B,), and the ponder cost (B,) (zero but for ACT) and N(t) (B,) (1, or rho)."""
        state, y = self.cell(self.cell.initial_state(x.shape[0]), x[:, 0])
        logits = self.readout(y).squeeze(-1)
        if isinstance(state, act.ACTState):
            return logits, state.ponder.squeeze(-1), state.steps.squeeze(-1)
        steps = self.cell.repeats if isinstance(self.cell, act.RepeatCell) else 1
        return logits, torch.zeros_like(logits), torch.full_like(logits, float(steps))


CELLS = {"rnn": seqmem.RNNCell, "gru": seqmem.GRUCell, "lstm": seqmem.LSTMCell}


def build(model: str, cfg: dict, setting: float) -> ParityNet:
    n, H, cell = cfg["n_bits"], cfg["hidden_size"], CELLS[cfg["cell_kind"]]
    if model == "act":
        return ParityNet(act.ACTCell(cell(n + 1, H), max_steps=cfg["max_steps"]))
    if model == "repeat":
        return ParityNet(act.RepeatCell(cell(n + 1, H), int(setting)))
    return ParityNet(cell(n, H))


def evaluate(net: ParityNet, x, y, k) -> dict:
    with torch.no_grad():
        logits, ponder, steps = net(x)
    right = ((logits > 0).long() == y).float()
    by_k = {}
    for j in range(1, int(k.max()) + 1):
        at = k == j
        by_k[str(j)] = {"accuracy": float(right[at].mean()), "ponder": float(ponder[at].mean()),
                        "steps": float(steps[at].mean())}
    out = {"accuracy": float(right.mean()), "ponder": float(ponder.mean()), "steps": float(steps.mean()),
           "by_k": by_k}
    if float(ponder.std()) > 0:
        out["ponder_k_correlation"] = float(np.corrcoef(ponder.numpy(), k.float().numpy())[0, 1])
    return out


def run(model: str, setting: float, seed: int, cfg: dict) -> dict:
    torch.manual_seed(seed)
    net = build(model, cfg, setting)
    tau = setting if model == "act" else 0.0
    g = torch.Generator().manual_seed(seed)
    val = tasks.parity_vectors(cfg["val_size"], cfg["n_bits"], generator=torch.Generator().manual_seed(VAL_SEED))
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    start, cpu_start = time.perf_counter(), time.process_time()
    curve, best, best_state, losses = [], -1.0, None, []
    for step in range(1, cfg["steps"] + 1):
        x, y, _ = tasks.parity_vectors(cfg["batch_size"], cfg["n_bits"], generator=g)
        logits, ponder, _ = net(x)
        loss = F.binary_cross_entropy_with_logits(logits, y.float())
        (loss + tau * ponder.mean()).backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
        if step % cfg["eval_every"] == 0:
            score = evaluate(net, *val)
            curve.append({"step": step, "accuracy": score["accuracy"], "steps": score["steps"],
                          "train_loss": float(np.mean(losses[-cfg["eval_every"]:]))})
            print(f"{model} {setting:g} seed {seed}, step {step}: validation accuracy {score['accuracy']:.4f}, "
                  f"ponder steps {score['steps']:.2f} ({time.perf_counter() - start:.0f} s)", flush=True)
            if score["accuracy"] > best:
                best, best_state = score["accuracy"], {k: v.clone() for k, v in net.state_dict().items()}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    net.load_state_dict(best_state)
    test = evaluate(net, *tasks.parity_vectors(cfg["test_size"], cfg["n_bits"],
                                               generator=torch.Generator().manual_seed(TEST_SEED)))
    best_step = max(curve, key=lambda c: c["accuracy"])["step"]
    return {"model": model, "setting": setting, "seed": seed, "tau": tau, "test": test, "curve": curve,
            "best_step": best_step, "parameters": sum(p.numel() for p in net.parameters()),
            "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1)}


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["act", "rnn", "repeat"], choices=["act", "rnn", "repeat"])
    parser.add_argument("--taus", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2, 1e-1])
    parser.add_argument("--repeats", type=int, nargs="+", default=[5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--merge", action="store_true", help="add these runs to the existing --out")
    parser.add_argument("--n-bits", type=int, default=16)
    parser.add_argument("--cell", dest="cell_kind", default="rnn", choices=sorted(CELLS))
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=20)
    add_training_arguments(parser, steps=120_000, eval_every=2000, batch_size=128, lr=1e-3, val_size=2000,
                           test_size=10_000, out=HERE / "act_parity.json", what="test vectors")
    return apply_quick(parser.parse_args(argv))


def main(argv=None):
    args = arguments(argv)
    if args.combine:
        data = merge_files(args.out, args.combine, key=("model", "setting", "seed"))
        print(f"{args.out}: {len(data['runs'])} runs, seeds {data['seeds']}")
        return
    torch.set_num_threads(1)
    names = ("n_bits", "cell_kind", "hidden_size", "max_steps", "steps", "eval_every", "batch_size", "lr", "val_size",
             "test_size")
    cfg = {name: getattr(args, name) for name in names}
    cfg.update(task="tasks.parity_vectors(batch_size, n_bits): k in 1..n_bits entries of +-1, one time step",
               cell="seqmem.RNNCell(tanh), hidden_size units; a linear read-out to one logit",
               loss="binary cross-entropy, plus tau * mean ponder cost (N + R) for act",
               optimizer_settings="Adam(lr), no clipping", selection="the parameters of the best validation "
               "accuracy (val_size vectors, seed 20000)", test_set="test_size vectors, seed 10000")
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("model", "setting", "seed"),
                    order=lambda r: (r["model"], r["setting"], r["seed"]), merge=args.merge, device="cpu, 1 thread")
    for model in args.models:
        settings = args.taus if model == "act" else args.repeats if model == "repeat" else [0.0]
        for setting in settings:
            for seed in args.seeds:
                row = run(model, float(setting), seed, cfg)
                record.add(row)
                t = row["test"]
                print(f"{model} {setting:g} seed {seed}: test accuracy {t['accuracy']:.4f}, ponder steps "
                      f"{t['steps']:.2f}, {row['train_seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()

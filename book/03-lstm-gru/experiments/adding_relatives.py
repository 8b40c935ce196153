"""The LSTM's relatives on the adding problem at T = 100: chapter 3's long-memory comparison.

Five networks with the same state budget (about 128 numbers carried from step to step) read
adding-problem sequences (``seqmem.tasks.adding_problem``) and answer the sum after the last step
through a linear read-out:

    rnn     seqmem.RNN, tanh, 128 units                    state h: 128
    lstm    seqmem.LSTM, 64 units, forget-gate bias 1      state (h, c): 2 x 64
    gru     seqmem.GRU, 128 units                          state h: 128
    nested  seqmem.NestedLSTMCell, 43 units                state (h, c, inner c): 3 x 43
    scrn    seqmem.SCRNCell, 64 hidden + 64 context units  state (h, s): 64 + 64

Every run gets the same optimizer (Adam), learning rate, batch size, gradient clipping and number
of steps; the training batches come from a seeded stream, the held-out set (1000 sequences) from
seed 10_000. Each run records the held-out MSE every ``--eval-every`` steps and, at the end, the
norm of dL/dh_t against the distance to the loss on 16 held-out sequences
(``seqmem.bptt.state_gradient_norms``; chapter 3, section 2). Answering 1 always scores 1/6.

Usage (from the repository root):

    python book/03-lstm-gru/experiments/adding_relatives.py                      # seed 0
    python book/03-lstm-gru/experiments/adding_relatives.py --seeds 1 --append   # add seed 1
    python book/03-lstm-gru/experiments/adding_relatives.py --steps 20 --T 10 \\
        --seeds 0 --out /tmp/quick.json                                            # a quick check

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and every run's curves; it is rewritten after each run.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import seqmem
from seqmem import bptt, tasks
from seqmem.experiment import Record

HERE = Path(__file__).resolve().parent
EXPERIMENT = "adding problem, LSTM and its relatives at one state budget"

MODELS = {  # name: the label the chapter shows
    "rnn": "RNN (tanh), 128 units",
    "lstm": "LSTM, 64 units, forget bias 1",
    "gru": "GRU, 128 units",
    "nested": "nested LSTM, 43 units",
    "scrn": "SCRN, 64 + 64 units",
}
STATE_SIZES = {"rnn": 128, "lstm": 2 * 64, "gru": 128, "nested": 3 * 43, "scrn": 64 + 64}


def sequence_layer(name: str) -> nn.Module:
    """The recurrent part of network ``name``, batch first."""
    if name == "rnn":
        return seqmem.RNN(2, 128, batch_first=True)
    if name == "lstm":  # forget-gate bias 1 (Gers et al. 2000)
        return seqmem.init_forget_bias_(seqmem.LSTM(2, 64, batch_first=True), 1.0)
    if name == "gru":
        return seqmem.GRU(2, 128, batch_first=True)
    if name == "nested":
        return seqmem.Stacked(seqmem.NestedLSTMCell, 2, 43)
    if name == "scrn":
        return seqmem.Stacked(lambda i, h: seqmem.SCRNCell(i, h, 64), 2, 64)  # y = [h; s]: 128 outputs
    raise ValueError(f"unknown model {name!r}; expected one of {list(MODELS)}")


def adding_model(name: str) -> seqmem.LastStep:
    """Network ``name``: its sequence layer, then a linear read-out after the last step, (B, T, 2) -> (B, 1)."""
    return seqmem.LastStep(sequence_layer(name), 1)


def step_cell(model: seqmem.LastStep) -> nn.Module:
    """The network's recurrent cell (the lecture's f), with the trained weights, for its gradient norms."""
    rnn = model.rnn
    if isinstance(rnn, seqmem.Stacked):
        return rnn.cells[0]
    cls = {seqmem.RNN: seqmem.RNNCell, seqmem.LSTM: seqmem.LSTMCell, seqmem.GRU: seqmem.GRUCell}[type(rnn)]
    cell = cls(rnn.input_size, rnn.hidden_size)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in rnn.state_dict().items()})
    return cell


def mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x)[0], y)


def run_one(job: dict) -> dict:
    """Train one network from one seed; return its curves."""
    torch.set_num_threads(1)
    cfg, name, seed = job["cfg"], job["model"], job["seed"]
    torch.manual_seed(seed)
    model = adding_model(name)
    train = torch.Generator().manual_seed(seed)
    x_test, y_test = tasks.adding_problem(1000, cfg["T"], torch.Generator().manual_seed(10_000))
    start = time.perf_counter()
    history = seqmem.fit(model, lambda step: tasks.adding_problem(cfg["batch_size"], cfg["T"], train), mse,
                         steps=cfg["steps"], lr=cfg["lr"], clip_grad_norm=cfg["clip"],
                         evaluate=lambda: mse(model, (x_test, y_test)), eval_every=cfg["eval_every"], progress=False)
    seconds = time.perf_counter() - start
    # in float64: a vanishing gradient underflows float32 long before 100 steps
    norms = bptt.state_gradient_norms(step_cell(model).double(), x_test[:16].double())
    dh, dc = (norms, None) if not isinstance(norms, tuple) else (norms[0], norms[1])  # c: an LSTM's c, an SCRN's s
    return {"model": name, "seed": seed, "test_mse": history.evals[-1][1],
            "eval_steps": [s for s, _ in history.evals], "eval_mse": [v for _, v in history.evals],
            "grad_norm_h": dh[::-1].tolist(), "grad_norm_c": None if dc is None else dc[::-1].tolist(),  # k steps back
            "n_params": sum(p.numel() for p in model.parameters()), "state_size": STATE_SIZES[name],
            "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--T", type=int, default=100)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--out", default=str(HERE / "adding_relatives.json"))
    parser.add_argument("--append", action="store_true",
                        help="add these runs to an existing results file made with the same configuration "
                             "(replacing any run of the same model and seed)")
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("T", "steps", "batch_size", "lr", "clip", "eval_every")}
    cfg = {**cfg, "optimizer": "Adam", "test_set": "1000 sequences, seed 10000"}
    # the slow cells first, so that the two workers finish together
    order = sorted(args.models, key=lambda m: m not in ("nested", "scrn"))
    jobs = [{"cfg": cfg, "model": m, "seed": s} for m in order for s in args.seeds]
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("model", "seed"),
                    order=lambda r: (list(MODELS).index(r["model"]), r["seed"]), merge=args.append,
                    device="cpu, 1 thread per run",
                    models={m: {"label": MODELS[m], "state_size": STATE_SIZES[m]} for m in args.models})
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            record.add(row)
            print(f"{row['model']:>6} seed {row['seed']}: test MSE {row['test_mse']:.4f} ({row['seconds']:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()

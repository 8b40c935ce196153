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
norm of dL/dh_t against the distance to the loss on 16 held-out sequences (chapter 3, section 2).
Answering 1 always scores 1/6.

Usage (from the repository root):

    python book/03-lstm-gru/experiments/adding_relatives.py                      # seed 0
    python book/03-lstm-gru/experiments/adding_relatives.py --seeds 1 --append   # add seed 1
    python book/03-lstm-gru/experiments/adding_relatives.py --steps 20 --T 10 \\
        --seeds 0 --out /tmp/quick.json                                            # a quick check

The results file (JSON) records the command, the configuration, the seeds, the versions, the
machine and every run's curves; it is rewritten after each run.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import seqmem
from seqmem import tasks

HERE = Path(__file__).resolve().parent

MODELS = {  # name: the label the chapter shows
    "rnn": "RNN (tanh), 128 units",
    "lstm": "LSTM, 64 units, forget bias 1",
    "gru": "GRU, 128 units",
    "nested": "nested LSTM, 43 units",
    "scrn": "SCRN, 64 + 64 units",
}
STATE_SIZES = {"rnn": 128, "lstm": 2 * 64, "gru": 128, "nested": 3 * 43, "scrn": 64 + 64}


def sequence_layer(name: str) -> tuple[nn.Module, int]:
    """The recurrent part of network ``name``, batch first, and the size of its output."""
    if name == "rnn":
        return seqmem.RNN(2, 128, batch_first=True), 128
    if name == "lstm":
        rnn = seqmem.LSTM(2, 64, batch_first=True)
        with torch.no_grad():  # forget-gate bias 1 (Gers et al. 2000): rows H:2H, order i, f, g, o
            rnn.bias_ih_l0[64:128] = 1.0
            rnn.bias_hh_l0[64:128] = 0.0
        return rnn, 64
    if name == "gru":
        return seqmem.GRU(2, 128, batch_first=True), 128
    if name == "nested":
        return seqmem.Stacked(lambda i, h: seqmem.NestedLSTMCell(i, h), 2, 43, batch_first=True), 43
    if name == "scrn":
        layer = seqmem.Stacked(lambda i, h: seqmem.SCRNCell(i, h, 64), 2, 64, batch_first=True)
        return layer, layer.output_size  # y = [h; s]
    raise ValueError(f"unknown model {name!r}; expected one of {list(MODELS)}")


class LastStep(nn.Module):
    """A sequence layer, then a linear read-out of its last output: (B, T, 2) -> (B, 1)."""

    def __init__(self, name: str):
        super().__init__()
        self.rnn, size = sequence_layer(name)
        self.head = nn.Linear(size, 1)

    def forward(self, x):
        out, _ = self.rnn(x)  # (B, T, size)
        return self.head(out[:, -1])  # (B, 1)


def step_cell(model: LastStep) -> nn.Module:
    """The network's recurrent cell (the lecture's f), with the trained weights, for gradient_norms."""
    rnn = model.rnn
    if isinstance(rnn, seqmem.Stacked):
        return rnn.cells[0]
    cls = {seqmem.RNN: seqmem.RNNCell, seqmem.LSTM: seqmem.LSTMCell, seqmem.GRU: seqmem.GRUCell}[type(rnn)]
    cell = cls(rnn.input_size, rnn.hidden_size)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in rnn.state_dict().items()})
    return cell


def gradient_norms(cell: nn.Module, xs: torch.Tensor):
    """‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ against the distance to a loss at the last step, by autograd.

    Runs ``cell`` over xs (T, B, I) from its zero state and puts a unit signal on the last output
    state h_T (all entries equal, total norm 1). Returns ``(dh, dc)``, NumPy arrays of length T
    whose entry k is the norm over the batch of the gradient k steps before the end; dc is the
    state's second part (an LSTM's c, an SCRN's s) and None for a one-part state.
    """
    state, hs, cs = cell.initial_state(xs.shape[1]), [], []
    for x in xs:
        state, _ = cell(state, x)
        parts = state if isinstance(state, tuple) else (state,)
        for part in parts[:2]:
            part.retain_grad()  # keep the gradient of this intermediate state
        hs.append(parts[0])
        cs.append(parts[1] if len(parts) > 1 else None)
    hs[-1].backward(torch.full_like(hs[-1], hs[-1].numel() ** -0.5))
    dh = torch.stack([h.grad.norm() for h in hs]).flip(0)  # (T,): index k is k steps back
    dc = torch.stack([c.grad.norm() for c in cs]).flip(0) if cs[0] is not None else None
    return dh.numpy(), (dc.numpy() if dc is not None else None)


def run_one(job: dict) -> dict:
    """Train one network from one seed; return its curves."""
    torch.set_num_threads(1)
    cfg, name, seed = job["cfg"], job["model"], job["seed"]
    torch.manual_seed(seed)
    model = LastStep(name)
    train = torch.Generator().manual_seed(seed)
    x_test, y_test = tasks.adding_problem(1000, cfg["T"], torch.Generator().manual_seed(10_000))
    start = time.perf_counter()
    history = seqmem.fit(model, lambda step: tasks.adding_problem(cfg["batch_size"], cfg["T"], train),
                         lambda m, x, y: F.mse_loss(m(x), y), steps=cfg["steps"], lr=cfg["lr"],
                         clip_grad_norm=cfg["clip"], evaluate=lambda: F.mse_loss(model(x_test), y_test),
                         eval_every=cfg["eval_every"], progress=False)
    seconds = time.perf_counter() - start
    # in float64: a vanishing gradient underflows float32 long before 100 steps
    dh, dc = gradient_norms(step_cell(model).double(), x_test[:16].transpose(0, 1).double())
    return {"model": name, "seed": seed, "test_mse": history.evals[-1][1],
            "eval_steps": [s for s, _ in history.evals], "eval_mse": [v for _, v in history.evals],
            "grad_norm_h": dh.tolist(), "grad_norm_c": None if dc is None else dc.tolist(),
            "n_params": sum(p.numel() for p in model.parameters()), "state_size": STATE_SIZES[name],
            "seconds": seconds}


def environment() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "seqmem": seqmem.__version__,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "device": "cpu, 1 thread per run"}}


def _previous(path: Path, fresh: dict, args) -> dict:
    """The results already in ``path``, extended by this invocation's command, seeds and models."""
    old = json.loads(path.read_text())
    if old["config"] != fresh["config"]:
        raise SystemExit(f"--append: {path} was made with {old['config']}, not {fresh['config']}")
    old["command"] = [old["command"]] if isinstance(old["command"], str) else old["command"]
    old["command"].append(fresh["command"])
    old["seeds"] = sorted(set(old["seeds"]) | set(args.seeds))
    old["models"].update(fresh["models"])
    return old


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
    # the slow cells first, so that the two workers finish together
    order = sorted(args.models, key=lambda m: m not in ("nested", "scrn"))
    jobs = [{"cfg": cfg, "model": m, "seed": s} for m in order for s in args.seeds]
    result = {"experiment": "adding problem, LSTM and its relatives at one state budget",
              "command": "python " + " ".join([os.path.relpath(__file__, Path.cwd())] + sys.argv[1:]),
              "config": {**cfg, "optimizer": "Adam", "test_set": "1000 sequences, seed 10000"},
              "models": {m: {"label": MODELS[m], "state_size": STATE_SIZES[m]} for m in args.models},
              "seeds": args.seeds, **environment(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": []}
    if args.append:
        result = _previous(Path(args.out), result, args)
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            # a rerun of a (model, seed) already in the file replaces it
            result["runs"] = [r for r in result["runs"] if (r["model"], r["seed"]) != (row["model"], row["seed"])]
            result["runs"].append(row)
            result["runs"].sort(key=lambda r: (list(MODELS).index(r["model"]), r["seed"]))
            result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
            print(f"{row['model']:>6} seed {row['seed']}: test MSE {row['test_mse']:.4f} ({row['seconds']:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()

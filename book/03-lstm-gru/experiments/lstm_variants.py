"""Greff et al.'s eight LSTM variants (and the vanilla LSTM V) on a continual character language model.

The sweep behind chapter 3's table (book/03-lstm-gru/03-lstm-variants.ipynb). Each variant is
``seqmem.LSTM(variant=...)`` inside the same small character language model, trained from the
same seeds on the docstrings of Python's standard library (``seqmem.lm.stdlib_text``), read as
B continuous streams whose state is carried from chunk to chunk and never reset (truncated BPTT,
``seqmem.fit(..., truncate=T)``): the continual-prediction setting of Gers et al. (2000). The
score is the bits per character of the validation text, read in one continuous pass from the zero
state (``bits_per_char`` below).

Usage (from the repository root):

    python book/03-lstm-gru/experiments/lstm_variants.py                      # the full sweep (*)
    python book/03-lstm-gru/experiments/lstm_variants.py --steps 50 --seeds 0 \\
        --variants NP NFG --out /tmp/quick.json                                 # a quick check

(*) 27 runs, two at a time, one thread each: 17 minutes on a shared 2-core machine. The results
file (JSON) records the command, the configuration, the seeds, the versions, the
machine and one row per (variant, seed).
"""
from __future__ import annotations

import argparse
import json
import math
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
from seqmem import data, lm
from seqmem.text import Vocab

VARIANTS = ["V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR"]
HERE = Path(__file__).resolve().parent


class CharLSTM(nn.Module):
    """Embedding (V, E), one ``seqmem.LSTM`` layer of the given variant, a linear head (V, H)."""

    def __init__(self, vocab_size: int, hidden_size: int, embedding_dim: int, variant: str):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = seqmem.LSTM(embedding_dim, hidden_size, batch_first=True, variant=variant)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, x, state=None):
        out, state = self.rnn(self.embedding(x), state)  # (B, T, H)
        return self.head(out), state  # (B, T, V)


def chunk_loss(model, x, y, state):
    """The loss of one chunk (B, T) and the state to hand to the next: ``fit``'s truncated form."""
    logits, state = model(x, state)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


@torch.no_grad()
def bits_per_char(model, ids: torch.Tensor, chunk_len: int = 500) -> float:
    """Bits per character of ``ids`` read in one continuous pass from the zero state.

    As ``seqmem.lm.perplexity`` (base 2, no exponential), so a diverged model gives inf or nan
    rather than an OverflowError.
    """
    x, y, state, nll = ids[None, :-1], ids[None, 1:], None, 0.0  # (1, N - 1)
    model.eval()
    for j in range(0, x.shape[1], chunk_len):
        logits, state = model(x[:, j : j + chunk_len], state)  # (1, chunk, V)
        nll += F.cross_entropy(logits[0], y[0, j : j + chunk_len], reduction="sum").item()
    return nll / x.shape[1] / math.log(2)


def corpus(n_valid: int):
    """The training ids and the first ``n_valid`` validation ids of the stdlib text, and V."""
    text = lm.stdlib_text()
    train, valid, _ = lm.split_text(text)
    vocab = Vocab.from_text(text)
    return vocab.encode(train), vocab.encode(valid[:n_valid]), len(vocab)


def run_one(job: dict) -> dict:
    """Train one variant from one seed; return its row of the results."""
    torch.set_num_threads(1)
    cfg, variant, seed = job["cfg"], job["variant"], job["seed"]
    train_ids, valid_ids, V = corpus(cfg["n_valid"])
    seqmem.seed(seed)
    model = CharLSTM(V, cfg["hidden_size"], cfg["embedding_dim"], variant)
    x, y = data.text_streams(train_ids, cfg["batch_size"])
    n = cfg["steps"] * cfg["chunk"]  # the first n tokens of every stream: `steps` chunks
    start = time.perf_counter()
    history = seqmem.fit(model, [(x[:, :n], y[:, :n])], chunk_loss, truncate=cfg["chunk"], lr=cfg["lr"],
                         clip_grad_norm=cfg["clip"], progress=False)
    bpc = bits_per_char(model, valid_ids)
    tail = history.loss[-50:]
    finite = math.isfinite(bpc)
    return {"variant": variant, "seed": seed, "valid_bpc": bpc if finite else None, "diverged": not finite,
            "train_bpc_last50": sum(tail) / len(tail) / math.log(2), "n_params": sum(p.numel() for p in model.parameters()),
            "seconds": time.perf_counter() - start}


def environment() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__, "seqmem": seqmem.__version__,
            "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                        "cpu_count": os.cpu_count(), "device": "cpu, 1 thread per run"}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=500, help="optimizer steps (chunks) per run")
    parser.add_argument("--chunk", type=int, default=25, help="truncated-BPTT length T")
    parser.add_argument("--batch-size", type=int, default=32, help="B continuous streams")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--n-valid", type=int, default=10_000, help="validation characters")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--out", default=str(HERE / "lstm_variants.json"))
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in ("steps", "chunk", "batch_size", "hidden_size", "embedding_dim",
                                         "lr", "clip", "n_valid")}
    jobs = [{"cfg": cfg, "variant": v, "seed": s} for s in args.seeds for v in args.variants]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        runs = []
        for row in pool.imap_unordered(run_one, jobs):
            runs.append(row)
            print(f"{row['variant']:>5} seed {row['seed']}: valid {row['valid_bpc']} bits/char, train "
                  f"{row['train_bpc_last50']:.3f} ({row['seconds']:.0f} s)", flush=True)
    result = {"experiment": "Greff et al. LSTM variants, continual character LM on stdlib docstrings",
              "command": "python " + " ".join([os.path.relpath(__file__, Path.cwd())] + sys.argv[1:]),
              "config": cfg, "seeds": args.seeds, "variants": args.variants, **environment(),
              "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "runs": sorted(runs, key=lambda r: (args.variants.index(r["variant"]), r["seed"]))}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()

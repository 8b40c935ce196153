"""Greff et al.'s eight LSTM variants (and the vanilla LSTM V) on a continual character language model.

The sweep behind chapter 3's table (book/03-lstm-gru/03-lstm-variants.ipynb). Each variant is
``seqmem.LSTM(variant=...)`` inside the same small character language model, trained from the
same seeds on the docstrings of Python's standard library (``seqmem.lm.stdlib_text``), read as
B continuous streams whose state is carried from chunk to chunk and never reset (truncated BPTT,
``seqmem.fit(..., strategy=seqmem.TruncatedBPTT(T))``): the continual-prediction setting of Gers
et al. (2000). The model is ``seqmem.lm.CharRNNLM`` with one ``seqmem.LSTM`` layer of the variant,
trained by ``seqmem.lm.train_continual``; the score is the bits per character of the validation
text, read in one continuous pass from the zero state (``seqmem.metrics.bits_per_char``).

Usage (from the repository root):

    python book/03-lstm-gru/experiments/lstm_variants.py                      # the full sweep (*)
    python book/03-lstm-gru/experiments/lstm_variants.py --steps 50 --seeds 0 \\
        --variants NP NFG --out /tmp/quick.json                                 # a quick check

(*) 27 runs, two at a time, one thread each: 17 minutes on a shared 2-core machine. The results
file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration, the seeds, the
versions, the machine and one row per (variant, seed).
"""
from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import time
from pathlib import Path

import torch

import seqmem
from seqmem import lm
from seqmem.experiment import Record
from seqmem.text import Vocab

VARIANTS = ["V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR"]
HERE = Path(__file__).resolve().parent
EXPERIMENT = "Greff et al. LSTM variants, continual character LM on stdlib docstrings"


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
    start = time.perf_counter()
    model, history, bpc = lm.train_continual(
        train_ids, valid_ids, V, cell=seqmem.LSTM, variant=variant, seed=seed, steps=cfg["steps"], chunk=cfg["chunk"],
        batch_size=cfg["batch_size"], hidden_size=cfg["hidden_size"], embedding_dim=cfg["embedding_dim"], lr=cfg["lr"],
        clip_grad_norm=cfg["clip"])
    tail = history.loss[-50:]
    finite = math.isfinite(bpc)
    return {"variant": variant, "seed": seed, "valid_bpc": bpc if finite else None, "diverged": not finite,
            "train_bpc_last50": sum(tail) / len(tail) / math.log(2), "n_params": sum(p.numel() for p in model.parameters()),
            "seconds": time.perf_counter() - start}


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
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("variant", "seed"),
                    order=lambda r: (args.variants.index(r["variant"]), r["seed"]), device="cpu, 1 thread per run",
                    variants=args.variants)
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            record.add(row)
            print(f"{row['variant']:>5} seed {row['seed']}: valid {row['valid_bpc']} bits/char, train "
                  f"{row['train_bpc_last50']:.3f} ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

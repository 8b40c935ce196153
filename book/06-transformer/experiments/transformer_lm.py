"""A character-level decoder-only Transformer on the standard library's text, trained longer (chapter 6).

The page ``07-language-models`` trains a small ``seqmem.TransformerLM`` for about 45 s; this script
trains one for minutes, on the same text, split and measure as chapter 1's language models
(``seqmem.lm.stdlib_text``, ``split_text``: the first 90% to train, the next 5% validation, the
last 5% test; perplexity of characters 2 ... N of a block, ``seqmem.metrics.perplexity``), so that
its numbers sit in the same table as chapter 1's n-grams and char-RNN.

Training: random windows of ``--seq-len`` characters (``lm.random_windows``), Adam with a constant
learning rate, gradients clipped to norm 1, no dropout; every ``--eval-every`` steps the
perplexity of the first 10,000 validation characters is recorded (the page's curve). At the end,
the validation and test perplexity of the whole blocks, and the bits per character.

Usage (from the repository root):

    python book/06-transformer/experiments/transformer_lm.py              # the page's results file
    python book/06-transformer/experiments/transformer_lm.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seed, the versions, the machine and the run.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import seqmem
from seqmem import lm, metrics
from seqmem.experiment import Record
from seqmem.text import Vocab

HERE = Path(__file__).resolve().parent
EXPERIMENT = "a character-level decoder-only Transformer LM on the stdlib docstrings: perplexity as chapter 1 measures it"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64, help="the window, and the model's max_len")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--nhead", type=int, default=4)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--dim-feedforward", type=int, default=512)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--quick", action="store_true", help="a tiny run: 20 steps, a small model")
    parser.add_argument("--out", default=str(HERE / "transformer_lm.json"))
    args = parser.parse_args()
    if args.quick:
        args.steps, args.eval_every, args.d_model, args.num_layers, args.seq_len = 20, 10, 32, 1, 32
    torch.set_num_threads(1)
    arch = dict(d_model=args.d_model, nhead=args.nhead, num_layers=args.num_layers,
                dim_feedforward=args.dim_feedforward, max_len=args.seq_len)
    cfg = dict(**arch, batch_size=args.batch_size, steps=args.steps, eval_every=args.eval_every, lr=args.lr,
               dropout=0.0, norm_first=True, clip_grad_norm=1.0, optimizer="Adam", eval_chars=10_000,
               text="seqmem.lm.stdlib_text()", split=[0.9, 0.05, 0.05])
    record = Record(args.out, EXPERIMENT, cfg, [args.seed], key=("seed",), order=lambda r: r["seed"])

    text = lm.stdlib_text()
    vocab = Vocab.from_text(text)
    train, valid, test = lm.split_text(vocab.encode(text))
    seqmem.seed(args.seed)
    model = seqmem.TransformerLM(len(vocab), dropout=0.0, norm_first=True, **arch)
    g = seqmem.seed(args.seed)
    start, cpu = time.perf_counter(), time.process_time()
    history = seqmem.fit(model, lambda step: lm.random_windows(train, args.batch_size, args.seq_len, generator=g),
                         lm.next_token_loss, steps=args.steps, lr=args.lr, clip_grad_norm=1.0, progress=False,
                         evaluate=lambda: metrics.perplexity(model, valid[:10_000], batch_size=8),
                         eval_every=args.eval_every)
    train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    ppl_valid = metrics.perplexity(model, valid, batch_size=8)
    ppl_test = metrics.perplexity(model, test, batch_size=8)
    record.add(dict(seed=args.seed, parameters=sum(p.numel() for p in model.parameters()),
                    train_seconds=round(train_seconds, 1), train_cpu_seconds=round(train_cpu, 1),
                    evals=[[s, v] for s, v in history.evals],
                    loss_every_100=[sum(history.loss[i:i + 100]) / len(history.loss[i:i + 100])
                                    for i in range(0, len(history.loss), 100)],
                    ppl_valid=ppl_valid, ppl_test=ppl_test,
                    bpc_valid=math.log2(ppl_valid), bpc_test=math.log2(ppl_test),
                    sample=lm.sample(model, vocab, "Return the ", 300, temperature=0.5,
                                     generator=torch.Generator().manual_seed(0))))
    print(f"{args.steps} steps in {train_seconds:.0f} s: valid {ppl_valid:.3f}, test {ppl_test:.3f}")


if __name__ == "__main__":
    main()

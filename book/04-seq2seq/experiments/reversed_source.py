"""Reversing the source (Sutskever et al. 2014): how many steps to a fixed held-out accuracy, with and without.

Sutskever et al. fed their LSTM encoder the source sentence in reverse order (the target kept its
order) and report that this alone took the test perplexity of their English-to-French model from
5.8 to 4.7 and its BLEU score from 25.9 to 30.6. Their explanation: reversed, the first words of
the source sit next to the first words of the target, so the problem gains many short-term
dependencies while the average distance between a source word and its translation stays the same.

Here one encoder-decoder (``seqmem.Encoder`` over a ``seqmem.GRU``, a ``seqmem.Decoder`` with a
``GRUCell``, E = 32, H = 128, the context bridged to the decoder's initial state) learns two tasks
whose target follows the source's order, once with the source as it comes and once reversed
within its length (``seqmem.layers.reverse_within``; the padding stays at the end):

    numbers  English number words to Chinese numerals (``tasks.number_translation``), held-out
             numbers; sources of at most 7 words
    copy     copy a string of 5 to 10 letters over 10 (``tasks.copy_tokens``)

Every run gets the same Adam steps (batch 64, teacher forcing, gradient clipping at 1) and is
evaluated every ``--eval-every`` steps by greedy decoding of a fixed held-out set of 500 pairs
(seed 10_000; for numbers the ``test`` split, numbers never trained on): exact match and token
accuracy (``seqmem.metrics``). The chapter reads off the steps each run needs to reach a
threshold.

Usage (from the repository root):

    python book/04-seq2seq/experiments/reversed_source.py                 # the full sweep, 12 runs
    python book/04-seq2seq/experiments/reversed_source.py --quick \\
        --out /tmp/quick.json                                             # a tiny check, seconds

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and every run's curves; it is rewritten after each run.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import torch

import seqmem
from seqmem import metrics, tasks
from seqmem.experiment import Record
from seqmem.layers import reverse_within

HERE = Path(__file__).resolve().parent
EXPERIMENT = "reversing the source: held-out accuracy against training steps, with and without"

TASKS = {  # name: the label the chapter shows
    "numbers": "number words to Chinese numerals",
    "copy": "copy 5-10 letters",
}
SETTINGS = ("forward", "reversed")
DEFAULT_STEPS = {"numbers": 600, "copy": 2500}
DEFAULT_EVAL_EVERY = {"numbers": 25, "copy": 50}


def vocabs(task: str):
    """The source and target vocabularies of ``task``."""
    return tasks.number_vocabs() if task == "numbers" else (tasks.symbol_vocab(10),) * 2


def batch(task: str, batch_size: int, split: str, generator: torch.Generator, reverse: bool):
    """A ``Pairs`` batch of ``task``, its source reversed within each length if ``reverse``."""
    if task == "numbers":
        pairs = tasks.number_translation(batch_size, split=split, generator=generator)
    else:
        pairs = tasks.copy_tokens(batch_size, length=(5, 10), n_symbols=10, generator=generator)
    if not reverse:
        return pairs
    source = pairs.source._replace(ids=reverse_within(pairs.source.ids, pairs.source.mask))  # (B, S)
    return pairs._replace(source=source)


def model_for(task: str, embedding_dim: int, hidden_size: int) -> seqmem.Seq2Seq:
    """A GRU encoder and a GRUCell decoder, the context (B, H) bridged to the decoder's s_0."""
    source_vocab, target_vocab = vocabs(task)
    E, H = embedding_dim, hidden_size
    encoder = seqmem.Encoder(len(source_vocab), E, seqmem.GRU(E, H, batch_first=True))
    decoder = seqmem.Decoder(len(target_vocab), E, seqmem.GRUCell(E, H), context_size=encoder.context_size)
    return seqmem.Seq2Seq(encoder, decoder)


def scores(model, test) -> tuple[float, float]:
    """Greedy decoding of the held-out pairs: (exact match, token accuracy)."""
    references = [row[:n - 1] for row, n in zip(test.target.ids.tolist(), test.target.lengths.tolist())]  # no <eos>
    outputs = seqmem.greedy(model, test.source.ids, test.source.lengths, max_len=test.target.ids.shape[1] + 2)
    return metrics.exact_match(outputs, references), metrics.token_accuracy(outputs, references)


def run_one(job: dict) -> dict:
    """Train one model on one task, the source reversed or not, from one seed; return its curves."""
    torch.set_num_threads(1)
    cfg, task, setting, seed = job["cfg"], job["task"], job["setting"], job["seed"]
    reverse = setting == "reversed"
    torch.manual_seed(seed)
    model = model_for(task, cfg["embedding_dim"], cfg["hidden_size"])
    train = torch.Generator().manual_seed(seed)
    test = batch(task, cfg["test_size"], "test", torch.Generator().manual_seed(10_000), reverse)
    curve = []

    def evaluate():
        curve.append(scores(model, test))
        return curve[-1][0]

    start = time.perf_counter()
    seqmem.fit(model, lambda step: batch(task, cfg["batch_size"], "train", train, reverse), seqmem.seq2seq_loss,
               steps=cfg["steps"][task], lr=cfg["lr"], clip_grad_norm=cfg["clip"], evaluate=evaluate,
               eval_every=cfg["eval_every"][task], progress=False)
    every = cfg["eval_every"][task]
    return {"task": task, "setting": setting, "seed": seed,
            "eval_steps": [every * (k + 1) for k in range(len(curve))],
            "exact_match": [e for e, _ in curve], "token_accuracy": [a for _, a in curve],
            "seconds": time.perf_counter() - start}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, nargs=2, metavar=("NUMBERS", "COPY"),
                        default=[DEFAULT_STEPS["numbers"], DEFAULT_STEPS["copy"]])
    parser.add_argument("--eval-every", type=int, nargs=2, metavar=("NUMBERS", "COPY"),
                        default=[DEFAULT_EVAL_EVERY["numbers"], DEFAULT_EVAL_EVERY["copy"]])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--quick", action="store_true", help="a tiny run: seed 0, 40 steps, 100 test pairs")
    parser.add_argument("--out", default=str(HERE / "reversed_source.json"))
    parser.add_argument("--append", action="store_true",
                        help="add these runs to an existing results file made with the same configuration")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.eval_every, args.test_size = [0], [40, 40], [20, 20], 100
    cfg = {"steps": dict(zip(TASKS, args.steps)), "eval_every": dict(zip(TASKS, args.eval_every)),
           **{k: getattr(args, k) for k in ("batch_size", "hidden_size", "embedding_dim", "lr", "clip", "test_size")},
           "optimizer": "Adam", "model": "GRU encoder, GRUCell decoder, context bridged to s_0",
           "test_set": "test_size pairs, seed 10000 (numbers: the test split)", "decoding": "greedy"}
    jobs = [{"cfg": cfg, "task": t, "setting": s, "seed": seed}
            for t in sorted(args.tasks, key=lambda t: t != "copy") for seed in args.seeds for s in SETTINGS]
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("task", "setting", "seed"),
                    order=lambda r: (list(TASKS).index(r["task"]), SETTINGS.index(r["setting"]), r["seed"]),
                    merge=args.append, device="cpu, 1 thread per run", tasks={t: TASKS[t] for t in args.tasks})
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            record.add(row)
            print(f"{row['task']:>7} {row['setting']:>8} seed {row['seed']}: exact match {row['exact_match'][-1]:.3f}, "
                  f"token accuracy {row['token_accuracy'][-1]:.3f} ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

"""The Transformer against chapter 5's LSTM with attention, on number translation (chapter 6).

The task is chapters 4 and 5's ``tasks.number_translation``: English number words ("seven
thousand eight hundred and fifteen") to Chinese numerals (七千八百一十五), 8,000 numbers to train
on and the 2,000 others held out. Two models, each trained from the same seeds on the same
batches of 64 fresh training pairs:

    lstm         chapter 5's attention-based model: ``seqmem.Encoder`` (an embedding of E = 32 and a
                 bidirectional ``seqmem.LSTM`` of 64 units per direction, so a memory of M = 128),
                 ``seqmem.AttentionDecoder`` (Bahdanau style, ``AdditiveScore``) over an
                 ``LSTMCell`` of H = 128 units whose state is bridged from the encoder's; Adam at
                 0.005, gradients clipped to norm 1, cross-entropy (``seq2seq_loss``), as chapter 5
                 trained its translator
    transformer  ``seqmem.TransformerSeq2Seq``: d_model 64, 4 heads, 2 + 2 layers, d_ff 256, dropout
                 0.1; Adam (0.9, 0.98, 1e-9) with ``noam_schedule`` (warm-up 400 steps, factor 1),
                 label smoothing 0.1 (``smoothed_seq2seq_loss``), gradients clipped to norm 1

Every ``--eval-every`` steps each model decodes (greedy, ``seqmem.greedy``) a fixed set of 500
held-out numbers (every fourth of the 2,000, so never trained on): exact match and corpus BLEU over
characters (``seqmem.metrics``). Training time is counted over the training steps only (wall and
CPU of this process, one thread), not over the evaluations. The file records, for every model and
seed, the curve of exact match and BLEU against steps, the steps and seconds until the exact match
first reaches 0.9 and 0.99, and the final scores.

Usage (from the repository root):

    python book/06-transformer/experiments/transformer_vs_lstm.py            # the chapter's sweep
    python book/06-transformer/experiments/transformer_vs_lstm.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and every run; it is rewritten after each run.
"""
from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import torch

import seqmem
from seqmem import metrics, tasks
from seqmem.experiment import Record

HERE = Path(__file__).resolve().parent
EXPERIMENT = "number translation: the Transformer against the LSTM with attention, accuracy against steps and time"
MODELS = ("lstm", "transformer")


def lstm_model(source_vocab: int, target_vocab: int, embedding_dim: int = 32, hidden_size: int = 64):
    """Chapter 5's translator with LSTMs: a bidirectional encoder (M = 2 hidden_size), an additive-attention decoder."""
    E = embedding_dim
    encoder = seqmem.Encoder(source_vocab, E, seqmem.LSTM(E, hidden_size, batch_first=True, bidirectional=True))
    M = H = encoder.output_size
    decoder = seqmem.AttentionDecoder(target_vocab, E, seqmem.LSTMCell(E + M, H), M, seqmem.AdditiveScore(H, M, H),
                                      "bahdanau", context_size=encoder.context_size)
    return seqmem.Seq2Seq(encoder, decoder)


def transformer_model(source_vocab: int, target_vocab: int, d_model: int = 64, nhead: int = 4, layers: int = 2,
                      dim_feedforward: int = 256, dropout: float = 0.1):
    return seqmem.TransformerSeq2Seq(source_vocab, target_vocab, d_model, nhead, layers, layers, dim_feedforward,
                                     dropout, max_len=32)


def recipe(kind: str, model, cfg: dict):
    """The optimizer, the scheduler (or None) and the loss of each model."""
    if kind == "lstm":
        return torch.optim.Adam(model.parameters(), lr=cfg["lstm_lr"]), None, seqmem.seq2seq_loss
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    schedule = seqmem.noam_schedule(optimizer, cfg["d_model"], cfg["warmup"], cfg["noam_factor"])
    return optimizer, schedule, partial(seqmem.smoothed_seq2seq_loss, epsilon=cfg["label_smoothing"])


def held_out(size: int, device=None):
    """The evaluation set: every (2000 / size)-th held-out number, the same for every model and seed."""
    numbers = tasks.number_split("test")[::len(tasks.number_split("test")) // size][:size]
    english, chinese = tasks.number_vocabs()
    pairs = [(tasks.number_words(n), tasks.chinese_numeral(n)) for n in numbers]
    return seqmem.text.encode_pairs(pairs, english, chinese, device=device), [list(t) for _, t in pairs]


def scores(model, pairs, truth) -> tuple[float, float]:
    """Greedy decoding of the evaluation set: (exact match, corpus BLEU over characters)."""
    chinese = tasks.number_vocabs()[1]
    model.eval()
    with torch.no_grad():
        outputs = [chinese.decode(o) for o in seqmem.greedy(model, pairs.source.ids, pairs.source.lengths, max_len=12)]
    model.train()
    return metrics.exact_match(outputs, truth), metrics.corpus_bleu(outputs, truth)


def train(kind: str, seed: int, cfg: dict, pairs, truth, device=None) -> dict:
    """Train one model from one seed; evaluate every eval_every steps; the curve and the times."""
    english, chinese = tasks.number_vocabs()
    torch.manual_seed(seed)
    model = (lstm_model(len(english), len(chinese)) if kind == "lstm" else
             transformer_model(len(english), len(chinese), cfg["d_model"])).to(device)
    optimizer, schedule, loss_fn = recipe(kind, model, cfg)
    g = torch.Generator().manual_seed(seed)  # the same training batches for both models of a seed
    curve = {"steps": [], "exact": [], "bleu": [], "seconds": [], "cpu_seconds": []}
    wall = cpu = 0.0
    model.train()
    for step in range(1, cfg["steps"] + 1):
        batch = tasks.number_translation(cfg["batch_size"], generator=g, device=device)
        started, started_cpu = time.perf_counter(), time.process_time()
        loss, _ = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
        wall, cpu = wall + time.perf_counter() - started, cpu + time.process_time() - started_cpu
        if step % cfg["eval_every"] == 0:
            exact, bleu = scores(model, pairs, truth)
            for key, value in (("steps", step), ("exact", exact), ("bleu", bleu), ("seconds", round(wall, 2)),
                               ("cpu_seconds", round(cpu, 2))):
                curve[key].append(value)
    first = lambda target: next((i for i, e in enumerate(curve["exact"]) if e >= target), None)
    reached = {f"{key}_to_{target}": (None if first(target) is None else curve[key][first(target)])
               for target in (0.9, 0.99) for key in ("steps", "seconds", "cpu_seconds")}
    return {"model": kind, "seed": seed, **curve, **reached, "final_exact": curve["exact"][-1],
            "final_bleu": curve["bleu"][-1], "best_exact": max(curve["exact"]),
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_seconds": round(wall, 1), "train_cpu_seconds": round(cpu, 1),
            "ms_per_step": round(1000 * wall / cfg["steps"], 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="a tiny run: seed 0, 40 steps")
    parser.add_argument("--out", default=str(HERE / "transformer_vs_lstm.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.seeds, args.steps, args.eval_every, args.eval_size = [0], 40, 20, 100
    cfg = {"steps": args.steps, "eval_every": args.eval_every, "eval_size": args.eval_size,
           "batch_size": args.batch_size, "clip": 1.0, "lstm_lr": 5e-3, "d_model": 64, "warmup": 400,
           "noam_factor": 1.0, "label_smoothing": 0.1, "task": "tasks.number_translation",
           "decoding": "greedy, max_len 12", "evaluation": "eval_size held-out numbers, every (2000 / eval_size)-th",
           "lstm": "Encoder(E 32, bidirectional LSTM 64) + AttentionDecoder(LSTMCell 128, AdditiveScore, bahdanau); "
                   "Adam 0.005, clip 1, cross-entropy",
           "transformer": "TransformerSeq2Seq(d 64, 4 heads, 2 + 2 layers, d_ff 256, dropout 0.1); "
                          "Adam(0.9, 0.98, 1e-9), noam_schedule(warmup 400, factor 1), label smoothing 0.1, clip 1"}
    pairs, truth = held_out(args.eval_size)
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("model", "seed"),
                    order=lambda r: (MODELS.index(r["model"]), r["seed"]), device="cpu, 1 thread",
                    models=list(args.models))
    for seed in args.seeds:
        for kind in args.models:
            row = train(kind, seed, cfg, pairs, truth)
            record.add(row)
            print(f"{kind:>11} seed {seed}: exact {row['final_exact']:.3f} BLEU {row['final_bleu']:.1f}, "
                  f"0.9 at step {row['steps_to_0.9']}, 0.99 at step {row['steps_to_0.99']}, "
                  f"{row['train_seconds']:.0f} s ({row['ms_per_step']:.1f} ms/step)", flush=True)


if __name__ == "__main__":
    main()

"""Digit captions with and without attention: chapter 5's comparison with chapter 4's captioner.

Two captioners, each trained from three seeds with chapter 4's recipe (fresh batches of 64 images
of ``seqmem.tasks.digit_captions``, Adam at 3e-3 for 1,200 steps and 1e-3 for 400 more, gradient
norm clipped at 1) and scored on chapter 4's 1,000 held-out images (``split="test"``, seed 1)
with greedy decoding:

- ``"plain"``: chapter 4's captioner (``book/04-seq2seq/06-captioning.ipynb``),
  ``seqmem.vision.Captioner``: a small convolutional network (``seqmem.vision.ImageEncoder``)
  gives one vector, the initial state of a ``seqmem.Decoder`` with a GRU cell of 128 units;
- ``"attention"``: ``seqmem.vision.AttentionCaptioner``, a ``RegionEncoder`` (8 strips of 4
  pixel columns, 64 features each) as the memory of a Bahdanau-style ``seqmem.AttentionDecoder``
  (additive score, GRU cell of 64 units, s_0 from the strips' mean), as chapter 5's page builds it.

For the attention captioner the record also keeps the mean attention each digit word puts on the
two strips of its digit.

Usage (from the repository root):

    python book/05-attention/experiments/captions_attention.py            # about 5 minutes, 1 thread
    python book/05-attention/experiments/captions_attention.py --quick    # a smoke test, into /tmp
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import seqmem
from seqmem import heads, metrics, tasks
from seqmem.experiment import Record
from seqmem.vision import AttentionCaptioner, Captioner, ImageEncoder, RegionEncoder

HERE = Path(__file__).resolve().parent
EXPERIMENT = "digit captions (1-4 digits), greedy exact match on 1,000 held-out images: no attention vs attention"


def build(model: str):
    V = len(tasks.caption_vocab())
    if model == "plain":
        return Captioner(ImageEncoder(32, 128), seqmem.Decoder(V, 32, seqmem.GRUCell(32, 128), context_size=128))
    E, M, H = 32, 64, 64
    decoder = seqmem.AttentionDecoder(V, E, seqmem.GRUCell(E + M, H), M, seqmem.AdditiveScore(H, M, H), "bahdanau",
                                      context_size=M)
    return AttentionCaptioner(RegionEncoder(32, M, strip_width=4, channels=16), decoder)


def loss_fn(model, batch):
    logits = model(batch.images, batch.target.ids)  # (B, T, V)
    return heads.cross_entropy(logits, batch.target.ids, batch.target.mask)


def digit_mass(model, test) -> float:
    """The mean attention a digit word puts on its digit's two strips (digit k: strips 2k, 2k + 1)."""
    with torch.no_grad():
        _, weights = model(test.images, test.target.ids, return_weights=True)  # (B, T, 8)
    mass = [float(weights[b, k, 2 * k:2 * k + 2].sum()) for b, n in enumerate(test.target.lengths.tolist())
            for k in range(n - 1)]
    return round(sum(mass) / len(mass), 4)


def run_one(model_name: str, seed: int, cfg: dict) -> dict:
    seqmem.seed(seed)
    model = build(model_name)
    g = torch.Generator().manual_seed(seed)
    test = tasks.digit_captions(cfg["n_test"], split="test", generator=seqmem.seed(1))
    vocab, references = tasks.caption_vocab(), [c.split() for c in test.target_text]
    start = time.perf_counter()
    for steps, lr in cfg["schedule"]:
        seqmem.fit(model, lambda i: tasks.digit_captions(cfg["batch_size"], generator=g), loss_fn, steps=steps, lr=lr,
                   clip_grad_norm=1.0, progress=False)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        words = [vocab.decode(c) for c in seqmem.greedy(model, test.images, None, max_len=6)]
    row = {"model": model_name, "seed": seed, "parameters": sum(p.numel() for p in model.parameters()),
           "exact_match": round(metrics.exact_match(words, references), 4),
           "token_accuracy": round(metrics.token_accuracy(words, references), 4), "seconds": round(seconds, 1)}
    if model_name == "attention":
        row["digit_attention_mass"] = digit_mass(model, test)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="60 steps, 200 test images, one seed, into /tmp")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = {"schedule": [[1200, 3e-3], [400, 1e-3]], "batch_size": 64, "n_test": 1000, "clip_grad_norm": 1.0,
           "test_seed": 1, "model_seed": "seed", "data_seed": "seed", "decoding": "greedy, max_len 6"}
    if args.quick:
        cfg.update(schedule=[[40, 3e-3], [20, 1e-3]], n_test=200)
        args.seeds = args.seeds[:1]
    out = args.out or ("/tmp/captions_attention_quick.json" if args.quick else str(HERE / "captions_attention.json"))
    record = Record(out, EXPERIMENT, cfg, args.seeds, key=("model", "seed"), order=lambda r: (r["model"], r["seed"]),
                    device="cpu, 1 thread")
    for seed in args.seeds:
        for name in ("plain", "attention"):
            row = run_one(name, seed, cfg)
            record.add(row)
            print(row, flush=True)


if __name__ == "__main__":
    main()

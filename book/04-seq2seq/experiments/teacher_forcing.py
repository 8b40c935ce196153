"""Teacher forcing, free running and scheduled sampling on date normalisation, trained to near convergence.

Chapter 4's page on teacher forcing trains one model three ways for a short budget from a single
seed. This script makes that comparison with more care: every regime from three seeds, with a
unidirectional and a bidirectional GRU encoder, for three times the page's budget.

Regimes (what the decoder reads at training step t, ``seq2seq_loss(teacher_forcing=...)``):

    teacher          the true previous token y*_{t-1} always (teacher forcing, p = 1)
    free             its own previous argmax always (free running, p = 0)
    scheduled-60     scheduled sampling (Bengio et al. 2015), the truth with probability
                     eps_i = k / (k + exp(i / k)) at training step i, k = 60 (eps_i = 1/2 near step 246)
    scheduled-150    the same with k = 150 (eps_i = 1/2 near step 752, the middle of 1500 steps)

The two values of k were fixed before the sweep ran: 60 is the page's value, 150 puts the switch
from the truth to the model's own tokens at the middle of this budget.

Encoders (E = 32, decoder a ``GRUCell`` with H = 128 started from the bridged context):

    uni   ``seqmem.GRU(E, 128)``, the final state the context (128 entries)
    bi    ``seqmem.GRU(E, 64, bidirectional=True)``, both final states the context (2 * 64)

Every run: 1500 Adam steps of 64 training dates (learning rate 5e-3, gradients clipped at norm 1),
seed s for the initial weights and the batches. Every ``--eval-every`` steps, 500 held-out dates
(the ``test`` split, seed 10_000) are decoded greedily: exact match, token accuracy of the greedy
output (``<eos>`` counted, so eleven positions per date), and token accuracy with the true prefix
(teacher forced, ``metrics.accuracy`` of the logits). At the end, 2,000 other held-out dates
(seed 10_001): the same three scores and the token error rate at each of the ten output positions
(wrong or missing character).

Usage (from the repository root):

    python book/04-seq2seq/experiments/teacher_forcing.py               # the full sweep, 24 runs
    python book/04-seq2seq/experiments/teacher_forcing.py --quick \\
        --out /tmp/quick.json                                           # a tiny check, seconds

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and every run's curves; it is rewritten after each run.
"""
from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import re
import time
from pathlib import Path

import torch

import seqmem
from seqmem import metrics, tasks
from seqmem.experiment import Record
from seqmem.seq2seq import ScheduledSampling, inverse_sigmoid_schedule

HERE = Path(__file__).resolve().parent
EXPERIMENT = "teacher forcing, free running and scheduled sampling: held-out dates against training steps"

REGIMES = {  # name: the label the chapter shows
    "teacher": "teacher forcing",
    "free": "free running",
    "scheduled-60": "scheduled sampling, k = 60",
    "scheduled-150": "scheduled sampling, k = 150",
}
ENCODERS = {"uni": "unidirectional GRU encoder", "bi": "bidirectional GRU encoder"}


def regime_name(name: str) -> str:
    """``argparse``'s check of a regime: teacher, free or scheduled-K with a number K >= 1."""
    if name in ("teacher", "free") or (re.fullmatch(r"scheduled-\d+(\.\d+)?", name) and float(name[10:]) >= 1):
        return name
    raise argparse.ArgumentTypeError(f"not a regime: {name!r} (teacher, free, scheduled-K)")


def label(regime: str) -> str:
    """The label the chapter shows for a regime."""
    return REGIMES.get(regime) or f"scheduled sampling, k = {regime[10:]}"


def teacher_forcing(regime: str):
    """``seq2seq_loss``'s ``teacher_forcing`` for a regime: a probability or a fresh schedule."""
    if regime == "teacher":
        return 1.0
    if regime == "free":
        return 0.0
    return ScheduledSampling(inverse_sigmoid_schedule, k=float(regime.split("-")[1]))


def model_for(encoder: str, embedding_dim: int, hidden_size: int) -> seqmem.Seq2Seq:
    """A GRU encoder (one direction of H, or two of H / 2) and a GRUCell decoder of H."""
    source_vocab, target_vocab = tasks.date_vocabs()
    E, H = embedding_dim, hidden_size
    layer = (seqmem.GRU(E, H, batch_first=True) if encoder == "uni"
             else seqmem.GRU(E, H // 2, batch_first=True, bidirectional=True))
    enc = seqmem.Encoder(len(source_vocab), E, layer)
    dec = seqmem.Decoder(len(target_vocab), E, seqmem.GRUCell(E, H), context_size=enc.context_size)
    return seqmem.Seq2Seq(enc, dec)


@torch.no_grad()
def scores(model, test, positions: bool = False) -> dict:
    """Greedy decoding of held-out pairs: exact match, token accuracy free running and teacher
    forced; with ``positions``, the token error rate at each of the ten output positions."""
    _, target_vocab = tasks.date_vocabs()
    references = [list(t) for t in test.target_text]
    outputs = seqmem.greedy(model, test.source.ids, test.source.lengths, max_len=test.target.ids.shape[1] + 1)
    hyps = [target_vocab.decode(o) for o in outputs]
    logits = model(test.source.ids, test.source.lengths, test.target.ids, teacher_forcing=1.0)  # (B, T, V)
    out = {"exact_match": metrics.exact_match(hyps, references),
           "token_accuracy_free": metrics.token_accuracy([h + ["<eos>"] for h in hyps],
                                                         [r + ["<eos>"] for r in references]),
           "token_accuracy_forced": metrics.accuracy(logits, test.target.ids, test.target.mask)}
    if positions:
        out["position_error"] = [sum(len(h) <= t or h[t] != r[t] for h, r in zip(hyps, references)) / len(hyps)
                                 for t in range(10)]
    return out


def run_one(job: dict) -> dict:
    """Train one model in one regime from one seed; return its curves and final scores."""
    torch.set_num_threads(1)
    cfg, regime, encoder, seed = job["cfg"], job["regime"], job["encoder"], job["seed"]
    torch.manual_seed(seed)
    model = model_for(encoder, cfg["embedding_dim"], cfg["hidden_size"])
    train = torch.Generator().manual_seed(seed)
    curve_set = tasks.date_normalisation(cfg["curve_size"], split="test", generator=torch.Generator().manual_seed(10_000))
    final_set = tasks.date_normalisation(cfg["final_size"], split="test", generator=torch.Generator().manual_seed(10_001))
    curve = []

    def evaluate():
        model.eval()
        curve.append(scores(model, curve_set))
        model.train()
        return curve[-1]["exact_match"]

    start = time.perf_counter()
    seqmem.fit(model, lambda step: tasks.date_normalisation(cfg["batch_size"], generator=train),
               functools.partial(seqmem.seq2seq_loss, teacher_forcing=teacher_forcing(regime)),
               steps=cfg["steps"], lr=cfg["lr"], clip_grad_norm=cfg["clip"], evaluate=evaluate,
               eval_every=cfg["eval_every"], progress=False)
    model.eval()
    every = cfg["eval_every"]
    return {"regime": regime, "encoder": encoder, "seed": seed,
            "eval_steps": [every * (k + 1) for k in range(len(curve))],
            **{key: [c[key] for c in curve] for key in ("exact_match", "token_accuracy_free", "token_accuracy_forced")},
            "final": scores(model, final_set, positions=True),
            "seconds": time.perf_counter() - start}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", type=regime_name, default=list(REGIMES),
                        help="teacher, free, or scheduled-K for any K >= 1 (the sweep: scheduled-60 and scheduled-150)")
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--curve-size", type=int, default=500)
    parser.add_argument("--final-size", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel, one thread each")
    parser.add_argument("--quick", action="store_true", help="a tiny run: seed 0, 40 steps, 100 test pairs")
    parser.add_argument("--out", default=str(HERE / "teacher_forcing.json"))
    parser.add_argument("--append", action="store_true",
                        help="add these runs to an existing results file made with the same configuration")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.eval_every, args.curve_size, args.final_size = [0], 40, 20, 100, 100
    cfg = {**{k: getattr(args, k) for k in ("steps", "eval_every", "batch_size", "hidden_size", "embedding_dim",
                                            "lr", "clip", "curve_size", "final_size")},
           "optimizer": "Adam", "decoder": "GRUCell, started from the bridged context",
           "schedule": "inverse sigmoid eps_i = k / (k + exp(i / k)), the model's argmax fed otherwise",
           "k_chosen": "60 and 150, fixed before the sweep ran",
           "curve_set": "curve_size test-split dates, seed 10000", "final_set": "final_size test-split dates, seed 10001",
           "decoding": "greedy"}
    jobs = [{"cfg": cfg, "regime": r, "encoder": e, "seed": seed}
            for seed in args.seeds for e in args.encoders for r in args.regimes]
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("regime", "encoder", "seed"),
                    order=lambda r: (list(ENCODERS).index(r["encoder"]), args.regimes.index(r["regime"])
                                     if r["regime"] in args.regimes else len(args.regimes), r["seed"]),
                    merge=args.append, device="cpu, 1 thread per run",
                    regimes={r: label(r) for r in args.regimes}, encoders={e: ENCODERS[e] for e in args.encoders})
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            record.add(row)
            print(f"{row['encoder']:>3} {row['regime']:>13} seed {row['seed']}: exact match "
                  f"{row['final']['exact_match']:.3f}, token accuracy free {row['final']['token_accuracy_free']:.3f}, "
                  f"forced {row['final']['token_accuracy_forced']:.3f} ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

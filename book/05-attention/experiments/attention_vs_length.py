"""Attention against the bottleneck: token accuracy by source length, for four decoders (chapter 5).

The analogue of Bahdanau et al.'s (2015) figure 2, on copying instead of translation. One encoder
(``seqmem.Encoder``: an embedding of E = 32 and a bidirectional ``seqmem.GRU`` of 32 units per
direction, so a memory h_1 ... h_S of M = 64 features) and four decoders, each a ``GRUCell`` of
H = 64 units whose s_0 is bridged from the encoder's context:

    plain     chapter 4's ``seqmem.Decoder``: the decoder sees the source only through s_0
    additive  ``seqmem.AttentionDecoder`` (Bahdanau style) with ``AdditiveScore(H, M, A = 64)``
    bilinear  the same with ``BilinearScore(H, M)``
    dot       the same with ``DotScore()`` (H = M, so no parameters)

Every model trains on ``tasks.copy_tokens`` over 20 letters with lengths uniform in 5-30, the same
batches for every model of a seed (Adam, learning rate 0.005, gradients clipped to norm 1, teacher
forcing, batches of 64). Every ``--eval-every`` steps the model decodes a validation set, 200
strings of 5-30 letters from seed 20_000 (not the test strings), and the parameters of its best
validation token accuracy are the ones tested: the accuracy of a single training snapshot jumps by
a few points from one evaluation to the next, so the last snapshot is a lottery. The test is
greedy decoding of 200 fresh strings of each length 5, 10, ..., 50 (the test strings of length n
drawn from seed 10_000 + n, the same for every model): token accuracy and exact match
(``seqmem.metrics``). Lengths above 30 were never trained on.

Usage (from the repository root):

    python book/05-attention/experiments/attention_vs_length.py            # the chapter's sweep
    python book/05-attention/experiments/attention_vs_length.py --models dot --steps 5000 \\
        --out book/05-attention/experiments/attention_vs_length_dot.json      # the dot score, trained longer
    python book/05-attention/experiments/attention_vs_length.py --models dot --style luong \\
        --out book/05-attention/experiments/attention_vs_length_dot_luong.json  # the dot score, Luong's style
    python book/05-attention/experiments/attention_vs_length.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and every run; it is rewritten after each run.
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

HERE = Path(__file__).resolve().parent
EXPERIMENT = "copying strings: token accuracy against source length, plain encoder-decoder vs three attention scores"
MODELS = ("plain", "additive", "bilinear", "dot")


def model_for(kind: str, n_symbols: int, embedding_dim: int, hidden_size: int,
              style: str = "bahdanau") -> seqmem.Seq2Seq:
    """A bidirectional GRU encoder (M = 2 hidden_size) and a GRUCell decoder of H = M units, plain or attending."""
    V, E = len(tasks.symbol_vocab(n_symbols)), embedding_dim
    encoder = seqmem.Encoder(V, E, seqmem.GRU(E, hidden_size, batch_first=True, bidirectional=True))
    M = H = encoder.output_size
    if kind == "plain":
        return seqmem.Seq2Seq(encoder, seqmem.Decoder(V, E, seqmem.GRUCell(E, H), context_size=encoder.context_size))
    score = {"additive": lambda: seqmem.AdditiveScore(H, M, H), "bilinear": lambda: seqmem.BilinearScore(H, M),
             "dot": seqmem.DotScore}[kind]()
    fed = M if style == "bahdanau" else H  # the context (Bahdanau) or Luong's attentional state h~ enters the cell
    decoder = seqmem.AttentionDecoder(V, E, seqmem.GRUCell(E + fed, H), M, score, style,
                                      context_size=encoder.context_size)
    return seqmem.Seq2Seq(encoder, decoder)


def test_set(n: int, size: int, n_symbols: int):
    """``size`` fresh strings of exactly n letters, the same for every model and seed."""
    return tasks.copy_tokens(size, (n, n), n_symbols=n_symbols, generator=torch.Generator().manual_seed(10_000 + n))


def scores(model, test, n: int) -> tuple[float, float]:
    """Greedy decoding of one test set of length n: (token accuracy, exact match)."""
    truth = test.target.ids[:, :n].tolist()  # the string itself, without <eos>
    outputs = seqmem.greedy(model, test.source.ids, test.source.lengths, max_len=n + 10)
    return metrics.token_accuracy(outputs, truth), metrics.exact_match(outputs, truth)


def run_one(job: dict) -> dict:
    """Train one model from one seed; its token accuracy and exact match at every test length."""
    torch.set_num_threads(1)
    cfg, kind, seed = job["cfg"], job["model"], job["seed"]
    torch.manual_seed(seed)
    model = model_for(kind, cfg["n_symbols"], cfg["embedding_dim"], cfg["hidden_size"], cfg.get("style", "bahdanau"))
    train = torch.Generator().manual_seed(seed)  # the same training strings for every model of a seed
    val = tasks.copy_tokens(cfg["val_size"], tuple(cfg["train_lengths"]), n_symbols=cfg["n_symbols"],
                            generator=torch.Generator().manual_seed(20_000))
    val_truth = [row[:n - 1] for row, n in zip(val.target.ids.tolist(), val.target.lengths.tolist())]
    best = {"accuracy": -1.0}

    def evaluate():  # validation token accuracy; keep the best parameters
        outputs = seqmem.greedy(model, val.source.ids, val.source.lengths, max_len=cfg["train_lengths"][1] + 10)
        accuracy = metrics.token_accuracy(outputs, val_truth)
        if accuracy > best["accuracy"]:
            best.update(accuracy=accuracy, state={k: v.clone() for k, v in model.state_dict().items()})
        return accuracy

    start, cpu = time.perf_counter(), time.process_time()
    history = seqmem.fit(model, lambda step: tasks.copy_tokens(cfg["batch_size"], tuple(cfg["train_lengths"]),
                                                                n_symbols=cfg["n_symbols"], generator=train),
                         seqmem.seq2seq_loss, steps=cfg["steps"], lr=cfg["lr"], clip_grad_norm=cfg["clip"],
                         evaluate=evaluate, eval_every=cfg["eval_every"], progress=False)
    train_seconds, train_cpu = time.perf_counter() - start, time.process_time() - cpu
    model.load_state_dict(best["state"])
    model.eval()
    with torch.no_grad():
        measured = [scores(model, test_set(n, cfg["test_size"], cfg["n_symbols"]), n) for n in cfg["test_lengths"]]
    return {"model": kind, "seed": seed, "lengths": list(cfg["test_lengths"]),
            "token_accuracy": [a for a, _ in measured], "exact_match": [e for _, e in measured],
            "val_steps": [step for step, _ in history.evals], "val_token_accuracy": [a for _, a in history.evals],
            "best_step": max(history.evals, key=lambda e: e[1])[0],
            "final_loss": float(sum(history.loss[-50:]) / len(history.loss[-50:])),
            "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": round(train_seconds, 1),
            "train_cpu_seconds": round(train_cpu, 1), "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden-size", type=int, default=32, help="per direction of the encoder; the decoder has twice")
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--n-symbols", type=int, default=20)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--style", default="bahdanau", choices=("bahdanau", "luong"),
                        help="the attentional decoder's style (the plain decoder has none)")
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--test-size", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel, one thread each")
    parser.add_argument("--quick", action="store_true", help="a tiny run: seed 0, 30 steps, 20 test strings")
    parser.add_argument("--out", default=str(HERE / "attention_vs_length.json"))
    parser.add_argument("--append", action="store_true",
                        help="add these runs to an existing results file made with the same configuration")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.eval_every, args.val_size, args.test_size = [0], 30, 15, 20, 20
    cfg = {"steps": args.steps, "eval_every": args.eval_every, "val_size": args.val_size,
           "train_lengths": [5, 30], "test_lengths": list(range(5, 51, 5)),
           **{k: getattr(args, k) for k in ("batch_size", "hidden_size", "embedding_dim", "n_symbols", "lr", "clip",
                                            "test_size")},
           **({"style": args.style} if args.style != "bahdanau" else {}),
           "optimizer": "Adam", "task": "tasks.copy_tokens", "decoding": "greedy, max_len = n + 10",
           "model": "bidirectional GRU encoder (M = 2 hidden_size), GRUCell decoder of H = M, s_0 bridged; "
                    "attention: AttentionDecoder, style bahdanau",
           "test_set": "test_size strings of each length n, seed 10000 + n",
           "selection": "the parameters of the best validation token accuracy (val_size strings of 5-30, seed 20000)"}
    jobs = [{"cfg": cfg, "model": kind, "seed": seed} for seed in args.seeds for kind in args.models]
    record = Record(args.out, EXPERIMENT, cfg, args.seeds, key=("model", "seed"),
                    order=lambda r: (MODELS.index(r["model"]), r["seed"]), merge=args.append,
                    device="cpu, 1 thread per run", models=list(args.models))
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for row in pool.imap_unordered(run_one, jobs):
            record.add(row)
            at = dict(zip(row["lengths"], row["token_accuracy"]))
            print(f"{row['model']:>8} seed {row['seed']}: token accuracy " +
                  " ".join(f"{n}:{a:.3f}" for n, a in at.items()) + f" ({row['seconds']:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

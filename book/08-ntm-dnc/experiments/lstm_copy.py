"""Copy by the paper's LSTM baseline: bit errors per sequence against length, trained on 1-20, tested to 40 (chapter 8).

The baseline of Graves et al. (2014, section 4.1, figure 5): a network without an external memory,
three stacked LSTM layers of 256 units (``seqmem.LSTM(9, 256, num_layers=3)``, torch's fused
kernel) with a linear read-out of 8 logits at every step (``seqmem.Tagger``): 1,328,136
parameters, about twenty times the NTM's of ``ntm_copy.py``. Everything else is that script's,
shared through ``copy_common.py`` and ``seqmem.memory_runs``: the data (``tasks.copy_sequences``,
8-bit vectors, lengths uniform in 1 ... 20, B = 16), the loss (the recall cross-entropy per
sequence in nats, averaged over the batch), Adam with learning rate 1e-3 and the gradient's total
norm clipped to 10, the same budget of steps, a validation every ``--eval-every`` steps
(``--val-size`` sequences of lengths 1-20, seed 20_000) whose lowest cost in bits selects the
parameters that are tested, and the test: ``--test-size`` sequences of each length L in
1 ... 40 (seed 10_000 + L), scored by bit errors per sequence (chance is 4 L) and cost in bits.
The paper's LSTM copies the lengths it trained on and fails beyond them.

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/lstm_copy.py --seeds 0 1 2        # the chapter's run (CPU, 1 thread)
    python book/08-ntm-dnc/experiments/lstm_copy.py --seeds 3 --merge    # one more seed into the same file
    python book/08-ntm-dnc/experiments/lstm_copy.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) has the layout of ``ntm_copy.json``: the
command, the configuration, the seeds, the versions, the machine and, per seed, the training and
validation curves, the test by length and the training's steps per second.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import copy_common
import seqmem
from copy_common import N_BITS

HERE = Path(__file__).resolve().parent
EXPERIMENT = "copy by an LSTM: bit errors per sequence by length 1-40, trained on lengths 1-20"


def build(cfg: dict, device) -> seqmem.Tagger:
    """The stacked LSTM of the configuration with its read-out, on ``device``: (B, T, 9) in, (B, T, 8) logits out."""
    lstm = seqmem.LSTM(N_BITS + 1, cfg["hidden_size"], num_layers=cfg["num_layers"], batch_first=True)
    return seqmem.Tagger(lstm, N_BITS).to(device)


def optimizer_for(cfg: dict, model) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"])


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    copy_common.add_arguments(parser)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    parser.add_argument("--clip-norm", type=float, default=10.0, help="clip the gradient's total norm (default 10)")
    copy_common.add_run_arguments(parser, str(HERE / "lstm_copy.json"))
    return copy_common.apply_quick(parser.parse_args(argv))


def main(argv=None):
    args = arguments(argv)
    cfg = {**copy_common.settings(args, ("steps", "eval_every", "val_size", "test_size", "test_max_len",
                                         "batch_size", "hidden_size", "num_layers", "lr", "clip_norm")),
           "optimizer": "adam", "train_len": list(copy_common.TRAIN_LEN), "n_bits": N_BITS,
           "task": copy_common.DESCRIPTIONS["task"],
           "model": "Tagger(LSTM(9, hidden_size, num_layers, batch_first=True), 8): a linear read-out per step",
           "loss": "tasks.sequence_cost(..., bits=False).mean(): recall cross-entropy per sequence, nats",
           "optimizer_settings": "Adam(lr); clip_norm: the gradient's total norm",
           "test_set": copy_common.DESCRIPTIONS["test_set"],
           "selection": copy_common.DESCRIPTIONS["selection"]}
    copy_common.main(args, EXPERIMENT, cfg, build, optimizer_for)


if __name__ == "__main__":
    main()

"""Copy by a Neural Turing Machine: bit errors per sequence against length, trained on 1-20, tested to 40 (chapter 8).

The experiment of Graves et al. (2014, section 4.1, figures 3-5) on a laptop's budget. One
``seqmem.NTMCell`` (an LSTM controller of 100 units, a memory of N = 128 slots of W = 20, one read
head and one write head, shifts -1, 0, +1: the sizes of the paper and of the public reference
implementations) trains on ``tasks.copy_sequences``: B sequences of 8-bit vectors, each of a
length uniform in 1 ... 20, padded together. The loss is the binary cross-entropy summed over an
episode's recall bits (``tasks.sequence_cost``, in nats), averaged over the batch.

Optimisation: Adam with learning rate 1e-3 and the gradient's total norm clipped to 10 (the
chapter's run: it converges within a few thousand steps), or, as in the public reference
implementations (loudinthecloud/pytorch-ntm and the NTM paper), RMSprop with learning rate 1e-4,
momentum 0.9 and smoothing 0.95 (``--optimizer rmsprop``), each gradient element clipped to
[-10, 10] (``--clip-value``). Every ``--eval-every`` steps the model is scored on a
validation set (``--val-size`` sequences of lengths 1-20, seed 20_000): the mean cost per sequence
in bits (the paper's figure 3) and bit errors per sequence; the parameters of the lowest
validation cost are the ones tested.

The test: ``--test-size`` fresh sequences of each length L in 1 ... 40 (seed 10_000 + L; lengths
above 20 were never trained on), scored by bit errors per sequence (``tasks.bit_errors``: the
output bits thresholded at 1/2, compared with the targets over the L recall steps; chance is
4 L) and by cost per sequence in bits. The paper shows that its NTM copies sequences far
longer than those it trained on with few errors, where an LSTM fails beyond 20 (figures 4 and 5):
``lstm_copy.py`` is that baseline, trained and tested the same way (the data, the run of a seed,
the shared options and the record are ``copy_common.py``'s; the training with its selection and the
scores are ``seqmem.memory_runs``).

Usage (from the repository root):

    python book/08-ntm-dnc/experiments/ntm_copy.py --seeds 0 1 2        # the chapter's run (CPU, 1 thread)
    python book/08-ntm-dnc/experiments/ntm_copy.py --seeds 3 --merge    # one more seed into the same file
    python book/08-ntm-dnc/experiments/ntm_copy.py --quick --out /tmp/quick.json

The results file (JSON, a ``seqmem.experiment.Record``) records the command, the configuration,
the seeds, the versions, the machine and the run: the training and validation curves, the test by
length, the training's steps per second.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import copy_common
from copy_common import N_BITS
from seqmem import ntm

HERE = Path(__file__).resolve().parent
EXPERIMENT = "copy by a Neural Turing Machine: bit errors per sequence by length 1-40, trained on lengths 1-20"


def build(cfg: dict, device) -> ntm.NTMCell:
    """The NTM of the configuration, on ``device``: 8 bits and a delimiter in, 8 bits out."""
    model = ntm.NTMCell(N_BITS + 1, N_BITS, controller_size=cfg["controller_size"], memory_size=cfg["memory_size"],
                        word_size=cfg["word_size"], read_heads=cfg["read_heads"],
                        controller=cfg["controller"]).to(device)
    if cfg["clip_value"] is not None:
        clip_values(model, cfg["clip_value"])
    return model


def clip_values(model, limit: float) -> None:
    """Clip every gradient element to [-limit, limit] as it is computed (the reference implementations'
    clipping), by a hook on each parameter: the ``.grad`` that the optimizer reads is clipped."""
    for p in model.parameters():
        p.register_hook(lambda grad: grad.clamp(-limit, limit))


def optimizer_for(cfg: dict, model) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "rmsprop":
        return torch.optim.RMSprop(model.parameters(), lr=cfg["lr"], momentum=0.9, alpha=0.95)
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"])


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    copy_common.add_arguments(parser)
    parser.add_argument("--controller", choices=["lstm", "feedforward"], default="lstm")
    parser.add_argument("--controller-size", type=int, default=100)
    parser.add_argument("--memory-size", type=int, default=128)
    parser.add_argument("--word-size", type=int, default=20)
    parser.add_argument("--read-heads", type=int, default=1)
    parser.add_argument("--optimizer", choices=["rmsprop", "adam"], default="adam")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-4 for RMSprop, 1e-3 for Adam")
    clip = parser.add_mutually_exclusive_group()
    clip.add_argument("--clip-value", type=float, default=None, help="clip each gradient element instead")
    clip.add_argument("--clip-norm", type=float, default=10.0, help="clip the gradient's total norm (default 10)")
    copy_common.add_run_arguments(parser, str(HERE / "ntm_copy.json"))
    args = parser.parse_args(argv)
    if args.clip_value is not None:
        args.clip_norm = None
    if args.lr is None:
        args.lr = 1e-4 if args.optimizer == "rmsprop" else 1e-3
    return copy_common.apply_quick(args)


def main(argv=None):
    args = arguments(argv)
    cfg = {**copy_common.settings(args, ("steps", "eval_every", "val_size", "test_size", "test_max_len",
                                         "batch_size", "controller", "controller_size", "memory_size",
                                         "word_size", "read_heads", "optimizer", "lr", "clip_value",
                                         "clip_norm")),
           "train_len": list(copy_common.TRAIN_LEN), "n_bits": N_BITS,
           "task": copy_common.DESCRIPTIONS["task"],
           "model": "NTMCell(9, 8, controller_size, memory_size, word_size, read_heads, controller), shifts -1..1",
           "loss": "tasks.sequence_cost(..., bits=False).mean(): recall cross-entropy per sequence, nats",
           "optimizer_settings": "RMSprop(momentum=0.9, alpha=0.95) or Adam; clip_value: each gradient "
                                 "element to [-clip_value, clip_value]; clip_norm: the total norm",
           "test_set": copy_common.DESCRIPTIONS["test_set"],
           "selection": copy_common.DESCRIPTIONS["selection"]}
    copy_common.main(args, EXPERIMENT, cfg, build, optimizer_for)


if __name__ == "__main__":
    main()

"""Benchmark: one training step of ``seqmem.LSTM`` against ``torch.nn.LSTM``, measured in the same run.

The method is bench_rnn.py's (whose helpers this script uses): a step is forward, backward and an
SGD update, on the same input, from the same weights. Three contenders per configuration:
torch.nn.LSTM (the reference), seqmem.LSTM (the fused path ``torch._VF.lstm``, the library's
default) and seqmem.LSTM(fused=False) (``lstm_step``, the from-scratch cell the chapter explains,
run by ``seqmem.layers.run_stacked``). They take turns in an order that alternates between rounds;
each ratio is the median over rounds of (that step / torch's step in the same round). On the CPU
with one thread (the default) a step is timed by this process's CPU time.

Run:   python bench/bench_lstm.py [--quick] [--threads N]     (--quick: T = 20, a smoke test)

Exits with status 1 when a fused ratio seqmem / torch exceeds 1.1 (the target of the issue); the
from-scratch path is reported, not gated.
"""
from __future__ import annotations

import sys

import torch

import seqmem
from bench_rnn import contenders, run

TARGET = 1.1  # the most seqmem's fused step may cost, as a multiple of torch's

# (name, arguments of the layer, T, B): a chapter-sized LSTM, then a deep bidirectional one.
CONFIGS = [
    ("1 layer", dict(input_size=32, hidden_size=128), 100, 32),
    ("2 layers, bidir", dict(input_size=32, hidden_size=128, num_layers=2, bidirectional=True), 100, 32),
]


def main(argv: list[str] | None = None) -> int:
    def make(kwargs, T, B, dev):
        return contenders(torch.nn.LSTM, seqmem.LSTM, kwargs, T, B, dev, state_parts=2)

    return run(argv, __doc__.splitlines()[0], CONFIGS, make, TARGET, scratch_label="scratch")


if __name__ == "__main__":
    sys.exit(main())

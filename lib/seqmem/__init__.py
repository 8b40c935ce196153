"""seqmem: neural networks with memory, from scratch.

The library of the seqmem course. Every recurrent cell is the lecture's f: ``state, y = cell(state, x)``;
every sequence layer is a drop-in for its torch namesake. Importing runs nothing and prints nothing.
"""
from . import bptt, grading, tasks, viz
from . import lm, text
from .core import History, check_shape, device, fit, seed, unroll
from .rnn import RNN, NaiveRNNCell, RNNCell, rnn_step

__version__ = "0.1.0"

__all__ = [
    "device", "seed", "check_shape", "unroll", "fit", "History",
    "tasks", "viz", "bptt", "grading", "text", "lm",
    "rnn_step", "RNNCell", "NaiveRNNCell", "RNN",
]

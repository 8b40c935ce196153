"""seqmem: neural networks with memory, from scratch.

The library of the seqmem course. Every recurrent cell is the lecture's f: ``state, y = cell(state, x)``;
every sequence layer is a drop-in for its torch namesake. Importing runs nothing and prints nothing.
"""
from . import bptt, grading, tasks, viz
from . import irnn
from . import lm, text
from .core import History, check_shape, device, fit, seed, unroll
from .rnn import RNN, NaiveRNNCell, RNNCell, rnn_step
from . import layers
from .layers import Stacked, run_stacked
from .lstm import LSTM, FGRState, LSTMCell, LSTMState
from .gru import GRU, GRUCell
from . import ctc, tagging
from . import data
from .nested import NestedLSTMCell, NestedLSTMState
from .scrn import SCRNCell, SCRNState

__version__ = "0.1.0"

__all__ = [
    "device", "seed", "check_shape", "unroll", "fit", "History",
    "tasks", "viz", "bptt", "grading", "text", "lm",
    "irnn",
    "rnn_step", "RNNCell", "NaiveRNNCell", "RNN",
    "layers", "Stacked", "run_stacked",
    "LSTMState", "FGRState", "LSTMCell", "LSTM", "GRUCell", "GRU",
    "ctc", "tagging", "data", "NestedLSTMCell", "NestedLSTMState", "SCRNCell", "SCRNState",
]

"""seqmem: neural networks with memory, from scratch.

The library of the seqmem course. Importing runs nothing and prints nothing. Three conventions
hold in every module:

**A cell is the lecture's f.** ``state, y = cell(state, x)`` for one step of a batch, with
``cell.initial_state(B)`` the zero state on the parameters' device and dtype; a state is a tensor
or a NamedTuple of tensors (``LSTMState(h, c)``). Every cell is a ``seqmem.cell.Cell``, which
registers its parameters, checks the state and the input and raises a ``ValueError`` saying what
was expected and what came.

**One step convention.** Every step function is ``step(params, state, x, **options) -> (state, y)``:
the parameters as a dict of tensors by name (``weight_ih``, ...), then state and input in the
cell's order, then the options (``nonlinearity``, ``variant``, ...). ``rnn_step``, ``gru_step``,
``lstm_step``, ``nested_lstm_step``, ``scrn_step`` and ``skip_rnn_step`` all read so; a cell's
``forward`` is its step function with the cell's parameters and options, and the drop-in layers
call the same functions with their ``weight_ih_l0``, ... for every layer and direction.

**One axis rule.** Everything a user passes data to is batch first, (B, T, ...): the tasks,
``unroll``, ``Stacked``, the heads, the metrics, ``fit``'s batches, the CTC decoders. The drop-in
layers ``RNN``, ``LSTM`` and ``GRU`` keep torch's arguments, time-first default included
(``batch_first=True`` for batch first), and so does ``ctc.ctc_loss`` (torch's (T, N, C), or
``batch_first=True``). The NumPy BPTT of chapter 2 (``seqmem.bptt.forward``/``backward``) is time
first, as its equations index x_t and h_t, and as homework 1 reads its arrays.

Dimensions everywhere: B batch, T time, I input size, H hidden size, L layers, D directions.
"""
# The shared pieces: training loop, cells, read-outs, metrics, results records, text
from . import core, cell, heads, metrics, experiment, text
from .core import (IGNORE_INDEX, History, TruncatedBPTT, check_shape, device, fit, map_state, seed,
                   unroll)
from .cell import Cell
from .heads import LastStep, Tagger

# Chapter 1: recurrent networks, deep and bidirectional layers, language models
from . import rnn, layers, lm
from .rnn import RNN, NaiveRNNCell, RNNCell, rnn_step
from .layers import Stacked, run_stacked

# Chapter 2: backpropagation through time, and the remedies for its gradients
from . import bptt, remedies
from .remedies import SkipRNNCell, irnn_init_

# Chapter 3: LSTM, GRU and their relatives; CTC; tagging with spans
from . import lstm, gru, relatives, ctc, tagging
from .lstm import LSTM, FGRState, LSTMCell, LSTMState, init_forget_bias_
from .gru import GRU, GRUCell
from .relatives import NestedLSTMCell, NestedLSTMState, SCRNCell, SCRNState

# Chapter 4: sequence to sequence
from . import seq2seq, decoding
from .seq2seq import (Bridge, Decoder, Encoder, ScheduledSampling, Seq2Seq, Seq2SeqState, exponential_schedule,
                      inverse_sigmoid_schedule, linear_schedule, seq2seq_loss)
from .decoding import BeamStep, Hypothesis, beam_hypotheses, beam_search, beam_step, greedy
from .vision import Captioner, ImageEncoder  # chapter 4's captioner lives with chapter 5's in seqmem.vision

# Chapter 5: attention; end-to-end memory networks
from . import attention, memn2n
from .attention import (AdditiveScore, AttentionDecoder, AttentionState, BilinearScore, DotScore, ScaledDotScore,
                        Score, attend, masked_softmax, scaled_dot_product_attention)
from .memn2n import MemN2N, MemN2NOutput, add_empty_memories, position_encoding, train_memn2n
from . import copy  # seqmem.copy; not in __all__: a star import must not hide Python's copy module
from .copy import CopyDecoder, CopyPairs, CopySeq2Seq, CopyState, copy_distribution, copy_loss, copy_nll
from . import vision, hard_attention
from .vision import AttentionCaptioner, RegionEncoder
from .hard_attention import GlimpseClassifier, GlimpseOutput, baseline_loss, glimpse_loss, reinforce_surrogate
from . import hierarchical
from .hierarchical import ContextAttention, HierarchicalAttention, HierarchicalOutput
from . import vqa
from .vqa import SpatialAttentionVQA, VQAOutput

# Chapter 6: the Transformer
from . import transformer
from .transformer import (MultiheadAttention, PositionalEncoding, PositionwiseFeedForward, Transformer,
                          TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
                          feed_forward, noam_lambda, noam_schedule, sinusoidal_encoding)
from . import transformer_seq2seq
from .transformer_seq2seq import (TransformerSeq2Seq, TransformerState, label_smoothing_loss,
                                  smoothed_seq2seq_loss)
from . import transformer_lm
from .transformer_lm import TransformerLM

# Chapter 7: pointer networks (their greedy and beam_search stay in seqmem.pointer: chapter 4's own the names)
from . import pointer
from .pointer import (PointerMemory, PointerNetwork, PositionSeq2Seq, greedy_step, hull_area_coverage, hull_exact,
                      optimality_gap, pointer_distribution, pointer_log_probs, pointer_loss, pointer_scores,
                      tour_length)

# Chapter 8: the Neural Turing Machine and the Differentiable Neural Computer (content addressing,
# reading and writing shared in seqmem.addressing; the DNC's other mechanisms as seqmem.dnc.*;
# the experiments' training and testing on the memory tasks in seqmem.memory_runs)
from . import addressing, ntm, dnc, memory_runs
from .addressing import content_addressing, cosine_similarity
from .ntm import NTMCell, NTMState, address, interpolate, sharpen, shift
from .dnc import (DNCCell, DNCInterface, DNCState, allocation_weighting, dnc_step, precedence_weighting,
                  retention_vector, temporal_link_matrix, usage_vector)

# Chapter 9: adaptive computation time and the Neural Programmer
from . import act
from .act import ACTCell, ACTState, RepeatCell
from . import programmer
from .programmer import NeuralProgrammer

# Chapter 10: newer networks with memory
from . import depth_gated
from .depth_gated import DepthGatedLSTM, DepthGatedLSTMCell

# Every chapter's tasks and data; figures; homework checks
from . import tasks, viz, grading

__version__ = "0.1.0"

__all__ = [
    # shared
    "core", "cell", "heads", "metrics", "experiment", "text",
    "device", "seed", "check_shape", "unroll", "map_state", "fit", "History", "TruncatedBPTT", "IGNORE_INDEX",
    "Cell", "Tagger", "LastStep",
    # chapter 1
    "rnn", "layers", "lm", "rnn_step", "RNNCell", "NaiveRNNCell", "RNN", "Stacked", "run_stacked",
    # chapter 2
    "bptt", "remedies", "irnn_init_", "SkipRNNCell",
    # chapter 3
    "lstm", "gru", "relatives", "ctc", "tagging",
    "LSTMState", "FGRState", "LSTMCell", "LSTM", "init_forget_bias_", "GRUCell", "GRU",
    "NestedLSTMCell", "NestedLSTMState", "SCRNCell", "SCRNState",
    # chapter 4
    "seq2seq", "decoding", "Encoder", "Decoder", "Bridge", "Seq2Seq", "Seq2SeqState", "seq2seq_loss",
    "ScheduledSampling", "inverse_sigmoid_schedule", "linear_schedule", "exponential_schedule",
    "greedy", "beam_search", "beam_hypotheses", "beam_step", "BeamStep", "Hypothesis",
    "ImageEncoder", "Captioner",
    # chapter 5
    "attention", "Score", "AdditiveScore", "BilinearScore", "DotScore", "ScaledDotScore", "masked_softmax", "attend",
    "scaled_dot_product_attention", "AttentionDecoder", "AttentionState",
    "memn2n", "MemN2N", "MemN2NOutput", "position_encoding", "add_empty_memories", "train_memn2n",
    "copy_distribution", "copy_nll", "CopyDecoder", "CopyState", "CopySeq2Seq", "CopyPairs", "copy_loss",
    "vision", "RegionEncoder", "AttentionCaptioner",
    "hard_attention", "GlimpseClassifier", "GlimpseOutput", "reinforce_surrogate", "baseline_loss", "glimpse_loss",
    "hierarchical", "ContextAttention", "HierarchicalAttention", "HierarchicalOutput",
    "vqa", "SpatialAttentionVQA", "VQAOutput",
    # chapter 6
    "transformer", "MultiheadAttention", "sinusoidal_encoding", "PositionalEncoding", "feed_forward",
    "PositionwiseFeedForward", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerDecoder", "Transformer", "noam_lambda", "noam_schedule",
    "transformer_seq2seq", "TransformerSeq2Seq", "TransformerState", "label_smoothing_loss", "smoothed_seq2seq_loss",
    "transformer_lm", "TransformerLM",
    # chapter 7
    "pointer", "PointerNetwork", "PointerMemory", "PositionSeq2Seq", "pointer_scores", "pointer_distribution", "pointer_log_probs",
    "pointer_loss", "greedy_step", "hull_exact",
    "hull_area_coverage", "tour_length", "optimality_gap",
    # chapter 8
    "addressing", "content_addressing", "cosine_similarity",
    "ntm", "NTMCell", "NTMState", "address", "interpolate", "sharpen", "shift",
    "dnc", "DNCCell", "DNCInterface", "DNCState", "dnc_step", "allocation_weighting", "retention_vector",
    "usage_vector", "temporal_link_matrix", "precedence_weighting", "memory_runs",
    # chapter 9
    "act", "ACTCell", "ACTState", "RepeatCell", "programmer", "NeuralProgrammer",
    # chapter 10
    "depth_gated", "DepthGatedLSTM", "DepthGatedLSTMCell",
    # every chapter
    "tasks", "viz", "grading",
]

"""Autograding for the course's homework: checks, guards, and a sandbox for student code.

The grade is decided by trusted code that never runs student code in its own process:

- ``guard``: blocking an item's references, type guards, comparisons, the grading seed;
- ``wire``: the plain-data format between the autograder and student code (never pickle);
- ``sandbox``: bubblewrap around student code (read-only environment, no network, no gradebook,
  a scratch folder, rlimits);
- ``worker``: what runs inside the sandbox: the notebook's cells, then the student's functions;
- ``session``: the autograder's handles on that worker and its functions;
- ``autograde``: the nbgrader preprocessors that tie it together (see ``nbgrader_config.py``);
- ``hw1``, ``hw2``, ...: one module of checks per homework. A new homework declares its items
  (inputs, reference, tolerances, what is blocked with ``guard.register``) and nothing else.

Hidden tests call the checks as ``seqmem.grading.check_<item>(student_function)``. Importing this
package imports no student code, no nbgrader and no sandbox: the checks run anywhere.
"""
from .guard import ReferenceBlocked, blocked, set_grading_seed
from .hw1 import check_bptt_with_readout, check_clip_grads_, check_rnn_forward_padded
from .hw2 import (check_counting_cell, check_ctc_log_beta, check_lstm_backward, check_mgu_cell_forward,
                  counter_outputs, counting_sequences, run_counting_cell)
from .hw3 import (check_beam_step_gnmt, check_clipped_precision, check_sample_decode, check_sequence_nll,
                  rnn_decoder_params)
from .hw4 import check_additive_weights, check_copy_mixture, check_memory_hop, check_scaled_dot_attention
from .hw5 import (check_masked_self_attention_block, check_merge_heads, check_multi_head_attention,
                  check_positional_encoding, check_split_heads)
from .hw6 import check_greedy_pointer_step, check_hull_coverage, check_pointer_log_probs, check_tour_length
from .hw7 import check_allocation_weights, check_content_weights, check_location_weights, check_write_heads
from .hw8 import check_act_halting, check_soft_step

__all__ = ["ReferenceBlocked", "blocked", "set_grading_seed",
           "check_rnn_forward_padded", "check_bptt_with_readout", "check_clip_grads_",
           "check_lstm_backward", "check_mgu_cell_forward", "check_counting_cell", "check_ctc_log_beta",
           "counting_sequences", "counter_outputs", "run_counting_cell",
           "check_sequence_nll", "check_sample_decode", "check_beam_step_gnmt", "check_clipped_precision",
           "rnn_decoder_params", "check_additive_weights", "check_scaled_dot_attention", "check_memory_hop",
           "check_copy_mixture", "check_positional_encoding", "check_split_heads", "check_merge_heads", "check_multi_head_attention",
           "check_masked_self_attention_block", "check_pointer_log_probs", "check_greedy_pointer_step",
           "check_hull_coverage", "check_tour_length", "check_content_weights", "check_location_weights",
           "check_write_heads", "check_allocation_weights", "check_act_halting", "check_soft_step"]

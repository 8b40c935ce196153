"""seqmem.layers (chapter 1): any cell stacked and bidirectional, batch first; and what a
bidirectional layer can learn that a left-to-right one cannot (seqmem.tasks.future_tagging).
"""
import pytest
import torch

import seqmem
from seqmem import tasks


def test_stacked_rnn_cells_are_torch_rnn():
    torch.manual_seed(0)
    ref = torch.nn.RNN(3, 5, num_layers=2, bidirectional=True, batch_first=True).double()
    stacked = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2, bidirectional=True).double()
    assert len(stacked.cells) == 4 and stacked.cells[2].input_size == 10  # layer 1 reads both directions
    for k, cell in enumerate(stacked.cells):  # cells are layer-major, forward before backward
        suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
        cell.load_state_dict({name: getattr(ref, name + suffix) for name in cell.state_dict()})
    x = torch.randn(4, 6, 3, dtype=torch.float64)  # (B, T, I): Stacked is batch first
    h0 = torch.randn(4, 4, 5, dtype=torch.float64)
    y, finals = stacked(x, list(h0))
    y_ref, h_ref = ref(x, h0)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(torch.stack(finals), h_ref)
    y0, _ = stacked(x)  # no states: each cell's initial_state, zeros
    torch.testing.assert_close(y0, ref(x)[0])


def test_stacked_sizes_the_next_layer_by_the_cells_output_size():
    def factory(input_size, hidden_size):  # a cell whose output y (B, 7) is not its state (B, H)
        return seqmem.NaiveRNNCell(input_size, hidden_size, 7)

    stacked = seqmem.Stacked(factory, 3, 5, num_layers=2, bidirectional=True)
    assert [c.input_size for c in stacked.cells] == [3, 3, 14, 14] and stacked.output_size == 14
    y, finals = stacked(torch.randn(2, 6, 3))
    assert y.shape == (2, 6, 14) and [s.shape for s in finals] == [(2, 5)] * 4


def test_run_stacked_reads_batch_first_and_runs_the_backward_cell_reversed():
    torch.manual_seed(1)
    forward, backward = seqmem.RNNCell(3, 4).double(), seqmem.RNNCell(3, 4).double()
    x = torch.randn(2, 5, 3, dtype=torch.float64)  # (B, T, I)
    y, (s_f, s_b) = seqmem.run_stacked([forward, backward], x, bidirectional=True)
    ys_f, _ = seqmem.unroll(forward, x)
    ys_b, _ = seqmem.unroll(backward, x.flip(1))  # read from the last step to the first ...
    torch.testing.assert_close(y, torch.cat([ys_f, ys_b.flip(1)], -1))  # ... and put back in time order
    torch.testing.assert_close(s_f, ys_f[:, -1])
    torch.testing.assert_close(s_b, ys_b[:, -1])  # the backward cell ends at step 0


def test_stacked_dropout_zero_and_one():
    """p = 0 is the dropout-free layer in training; with p = 1 the second layer reads zeros."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3)
    p0 = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2, dropout=0.0).train()
    torch.testing.assert_close(p0(x)[0], p0.eval()(x)[0])
    p1 = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2, dropout=1.0).train()
    on_zeros, _ = seqmem.unroll(p1.cells[1], torch.zeros(2, 5, 5))
    torch.testing.assert_close(p1(x)[0], on_zeros)
    assert not torch.allclose(p1.eval()(x)[0], on_zeros)


@pytest.mark.parametrize("make,match", [
    (lambda s: s(torch.randn(7, 3)), r"input must have shape \(B, T, I\) with I = 3, got \(7, 3\)"),
    (lambda s: s(torch.randn(2, 7, 4)), r"got \(2, 7, 4\)"),
    (lambda s: s(torch.randn(2, 7, 3), [torch.zeros(2, 5)]), r"one state per cell \(2\), got 1"),
])
def test_stacked_bad_input_raises_clear_errors(make, match):
    stacked = seqmem.Stacked(seqmem.RNNCell, 3, 5, num_layers=2)
    with pytest.raises(ValueError, match=match):
        make(stacked)


# -- deep and bidirectional: what the future gives ---------------------------------------------------

STEPS, T, K, SYMBOLS, H = 300, 20, 2, 4, 32


def _trained_accuracy(bidirectional: bool) -> float:
    """Seed 0; 300 Adam steps (lr 1e-2) of 64 sequences, T = 20, k = 2, 4 symbols, H = 32; the
    accuracy on 1,000 fresh sequences (18,000 labels). About 2 s per model on one CPU thread."""
    g = seqmem.seed(0)
    model = seqmem.Tagger(seqmem.RNN(SYMBOLS, H, batch_first=True, bidirectional=bidirectional), SYMBOLS)
    seqmem.fit(model, lambda i: tasks.future_tagging(64, T, k=K, n_symbols=SYMBOLS, generator=g),
               seqmem.heads.tagging_loss, steps=STEPS, lr=1e-2, progress=False)
    x, y = tasks.future_tagging(1000, T, k=K, n_symbols=SYMBOLS, generator=g)
    with torch.no_grad():
        return seqmem.metrics.accuracy(model(x)[0], y)  # the last K steps are IGNORE_INDEX: left out


def test_bidirectional_rnn_tags_with_the_future():
    acc = _trained_accuracy(bidirectional=True)
    assert acc >= 0.99, acc  # measured: 1.000


def test_unidirectional_rnn_stays_at_chance():
    # The label at t is independent of steps 0..t, so the forward model's guesses are right with
    # probability 1/4 whatever it learned: over 18,000 labels the accuracy is 0.25 with a standard
    # deviation of 0.0032, and 0.25 + 0.02 is six deviations away. Measured: 0.258.
    acc = _trained_accuracy(bidirectional=False)
    chance = 1 / SYMBOLS
    assert acc <= chance + 0.02, acc


@pytest.mark.parametrize("cell", [seqmem.RNNCell, seqmem.LSTMCell], ids=["rnn", "lstm"])
def test_stacked_with_lengths_gives_each_sequence_what_it_gets_alone(cell, dev):
    """A padded batch with its lengths: every real step's output and every final state (both
    directions, both layers) is the sequence's alone; the padded steps' outputs are 0, whatever
    the padding holds."""
    torch.manual_seed(0)
    stacked = seqmem.Stacked(cell, 3, 4, num_layers=2, bidirectional=True).to(dev, torch.float64)
    lengths = torch.tensor([5, 2, 7, 1], device=dev)
    x = torch.randn(4, 7, 3, dtype=torch.float64, device=dev)  # (B, T, I), padding holds noise
    y, finals = stacked(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        y_b, finals_b = stacked(x[b:b + 1, :n])
        torch.testing.assert_close(y[b:b + 1, :n], y_b)
        assert not y[b, n:].any()
        for s, s_b in zip(finals, finals_b):
            seqmem.map_state(lambda u, v: torch.testing.assert_close(u[b:b + 1], v), s, s_b)
    full, _ = stacked(x, lengths=torch.full((4,), 7, device=dev))
    torch.testing.assert_close(full, stacked(x)[0])  # full lengths: the unmasked loop


def test_run_stacked_backward_cell_starts_at_the_true_end():
    torch.manual_seed(1)
    forward, backward = seqmem.RNNCell(3, 4).double(), seqmem.RNNCell(3, 4).double()
    x = torch.randn(1, 5, 3, dtype=torch.float64)
    _, (s_f, s_b) = seqmem.run_stacked([forward, backward], x, bidirectional=True, lengths=torch.tensor([3]))
    ys_b, _ = seqmem.unroll(backward, x[:, :3].flip(1))  # steps 2, 1, 0: the padding never read
    torch.testing.assert_close(s_b, ys_b[:, -1])
    torch.testing.assert_close(s_f, seqmem.unroll(forward, x[:, :3])[1])


@pytest.mark.parametrize("lengths,match", [(torch.tensor([2, 9]), r"lengths must lie in \[0, T=5\]"),
                                           (torch.tensor([2]), r"lengths must have shape \(2,\), got \(1,\)"),
                                           (torch.tensor([2.0, 3.0]), "lengths must be an integer tensor")])
def test_stacked_refuses_bad_lengths(lengths, match):
    with pytest.raises(ValueError, match=match):
        seqmem.Stacked(seqmem.RNNCell, 3, 4)(torch.randn(2, 5, 3), lengths=lengths)

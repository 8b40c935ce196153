"""seqmem.heads and seqmem.metrics.accuracy: the read-outs and the per-step loss the chapters share.

Each head is compared with its computation written out (the layer, then a linear map); the masked
cross-entropy and accuracy with their definitions over the steps that count.
"""
import pytest
import torch
from torch.nn import functional as F

import seqmem
from helpers import gen
from seqmem import IGNORE_INDEX
from seqmem.heads import LastStep, Tagger, cross_entropy, output_size, tagging_loss
from seqmem.metrics import accuracy


def test_tagger_reads_out_every_step_and_returns_the_layers_state():
    torch.manual_seed(0)
    rnn = seqmem.LSTM(3, 5, batch_first=True, bidirectional=True)
    tagger = Tagger(rnn, 4)
    x = torch.randn(2, 6, 3)
    logits, (h, c) = tagger(x)
    out, (h_ref, c_ref) = rnn(x)
    torch.testing.assert_close(logits, out @ tagger.head.weight.T + tagger.head.bias)  # (B, T, O)
    torch.testing.assert_close(h, h_ref)
    assert tagger.head.in_features == 10  # both directions
    left_to_right = Tagger(seqmem.GRU(3, 5, batch_first=True), 4)
    first, state = left_to_right(x[:, :4])
    second, _ = left_to_right(x[:, 4:], state)  # the state hands over: two pieces read as one
    torch.testing.assert_close(torch.cat([first, second], 1), left_to_right(x)[0])


def test_heads_read_token_ids_through_an_embedding():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(10, 3)
    tagger = Tagger(seqmem.RNN(3, 5, batch_first=True), 2, embedding=emb)
    ids = torch.randint(0, 10, (2, 7))
    torch.testing.assert_close(tagger(ids)[0], tagger.head(tagger.rnn(emb(ids))[0]))


def test_last_step_reads_the_last_output_or_each_sequences_own():
    torch.manual_seed(0)
    model = LastStep(seqmem.Stacked(lambda i, h: seqmem.SCRNCell(i, h, 2), 3, 4), 1)
    assert model.head.in_features == 6  # an SCRN's y = [h; s]
    x = torch.randn(3, 5, 3)
    out, _ = model.rnn(x)
    y, _ = model(x)
    torch.testing.assert_close(y, model.head(out[:, -1]))
    lengths = torch.tensor([5, 2, 4])
    y_len, _ = model(x, lengths=lengths)
    torch.testing.assert_close(y_len, model.head(out[torch.arange(3), lengths - 1]))
    torch.testing.assert_close(y_len[1], model(x[1:2, :2])[0][0])  # the padding after step 2 is never read


def test_heads_need_a_batch_first_layer_and_size_themselves():
    with pytest.raises(ValueError, match="build the sequence layer with batch_first=True"):
        LastStep(torch.nn.RNN(2, 3), 1)
    with pytest.raises(ValueError, match="batch_first=True"):
        Tagger(seqmem.GRU(2, 3), 1)
    assert output_size(torch.nn.LSTM(2, 3, bidirectional=True)) == 6
    assert output_size(seqmem.GRU(2, 3, num_layers=2)) == 3


def test_cross_entropy_is_the_mean_over_the_steps_that_count():
    g = gen(0)
    logits = torch.randn(2, 4, 3, generator=g)
    y = torch.tensor([[0, 2, IGNORE_INDEX, 1], [1, 1, 0, IGNORE_INDEX]])
    counted = [(b, t) for b in range(2) for t in range(4) if y[b, t] != IGNORE_INDEX]
    by_hand = -torch.stack([logits[b, t].log_softmax(-1)[y[b, t]] for b, t in counted]).mean()
    torch.testing.assert_close(cross_entropy(logits, y), by_hand)
    mask = torch.tensor([[True, False, True, True], [True] * 4])  # also leave out step (0, 1)
    kept = [(b, t) for b, t in counted if mask[b, t]]
    torch.testing.assert_close(cross_entropy(logits, y, mask),
                               -torch.stack([logits[b, t].log_softmax(-1)[y[b, t]] for b, t in kept]).mean())
    torch.testing.assert_close(cross_entropy(logits, y), F.cross_entropy(logits.reshape(-1, 3), y.reshape(-1)))
    with pytest.raises(ValueError, match="must share their leading dimensions"):
        cross_entropy(logits, y[:, :3])


def test_accuracy_counts_the_labelled_steps():
    scores = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]], [[0.0, 3.0], [1.0, 0.0], [0.0, 1.0]]])  # (2, 3, 2)
    y = torch.tensor([[0, 0, IGNORE_INDEX], [1, 1, 1]])
    # predictions 0 1 0 / 1 0 1: right at (0, 0), (1, 0), (1, 2); wrong at (0, 1), (1, 1); (0, 2) unlabelled
    assert accuracy(scores, y) == pytest.approx(3 / 5)
    assert accuracy(scores.argmax(-1), y) == pytest.approx(3 / 5)  # predictions work as well
    assert accuracy(scores, y, mask=torch.tensor([[True, False, True], [False, True, True]])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no step has a label"):
        accuracy(scores, torch.full((2, 3), IGNORE_INDEX))
    with pytest.raises(ValueError, match="must match targets"):
        accuracy(scores, y[:, :2])


def test_tagging_loss_is_a_fit_loss_with_the_accuracy_logged():
    torch.manual_seed(0)
    model = Tagger(seqmem.RNN(4, 8, batch_first=True), 4)
    x, y = seqmem.tasks.future_tagging(5, 6, generator=gen(1))
    loss, logs = tagging_loss(model, (x, y))
    logits, _ = model(x)
    torch.testing.assert_close(loss, cross_entropy(logits, y))
    assert logs == {"accuracy": accuracy(logits, y)}
    history = seqmem.fit(model, [(x, y)] * 3, tagging_loss, progress=False)
    assert len(history.logs["accuracy"]) == 3

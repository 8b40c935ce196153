"""seqmem.data: the hand-built LSTM cell reproduces the slide, and each generated data set is what
its docstring says (seeded, well formed, labels computed independently here)."""
from collections import Counter

import pytest
import torch

import seqmem
from seqmem import data, tagging


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the lecture's counting cell


def run_slide(cell, dtype=torch.float32):
    state, cs, ys = cell.initial_state(1), [], []
    with torch.no_grad():
        for x in data.SLIDE_INPUTS.to(dtype):
            state, y = cell(state, x[None])  # x: (1, 3)
            cs.append(state.c[0, 0])
            ys.append(y[0, 0])
    return torch.stack(cs), torch.stack(ys)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_counting_cell_reproduces_the_slide(dtype):
    c, y = run_slide(data.counting_cell(dtype=dtype), dtype)
    # the gates saturate at σ(±10), not at 0 and 1: 7 kept for two steps decays to 6.9995
    torch.testing.assert_close(c, data.SLIDE_MEMORY.to(dtype), atol=1e-3, rtol=0)
    torch.testing.assert_close(y, data.SLIDE_OUTPUTS.to(dtype), atol=1e-3, rtol=0)


def test_counting_cell_on_the_slides_walkthrough():
    # pages 21-25 start from memory 0 with (3, 1, 0): memory 3, 7, 7, 7 (output 7), then reset to 0
    cell = data.counting_cell()
    state, rows = cell.initial_state(1), []
    with torch.no_grad():
        for x in [[3.0, 1, 0], [4, 1, 0], [2, 0, 0], [1, 0, 1], [3, -1, 0]]:
            state, y = cell(state, torch.tensor([x], dtype=torch.float32))
            rows.append((state.c.item(), y.item()))
    torch.testing.assert_close(torch.tensor(rows), torch.tensor([[3.0, 0], [7, 0], [7, 0], [7, 7], [0, 0]]),
                               atol=1e-3, rtol=0)


def test_counting_cell_weights_fit_an_lstm_cell_and_gate_as_the_slide_says():
    weights = data.counting_cell_weights(dtype=torch.float64)
    reference = seqmem.LSTMCell(3, 1).state_dict()
    assert {k: tuple(v.shape) for k, v in weights.items()} == {k: tuple(v.shape) for k, v in reference.items()}
    assert all(w.dtype == torch.float64 for w in weights.values())
    W, b = weights["weight_ih"], weights["bias_ih"] + weights["bias_hh"]
    gate = lambda row, x: torch.sigmoid(W[row] @ torch.tensor(x, dtype=torch.float64) + b[row]).item()
    i, f, o = 0, 1, 3  # torch's order i, f, g, o
    assert gate(i, [5.0, 1, 0]) > 0.9999 and gate(i, [5.0, 0, 0]) < 1e-4  # write only when x2 = 1
    assert gate(f, [5.0, 0, 0]) > 0.9999 and gate(f, [5.0, -1, 0]) < 1e-4  # forget only when x2 = -1
    assert gate(o, [5.0, 0, 1]) > 0.9999 and gate(o, [5.0, 0, 0]) < 1e-4  # show only when x3 = 1
    torch.testing.assert_close(W[2], torch.tensor([1.0, 0, 0], dtype=torch.float64))  # the cell input is x1
    assert torch.all(weights["weight_hh"] == 0)  # the slide's gates do not read h


def test_counting_cell_is_linear_where_the_slide_is_and_follows_the_device(dev):
    cell = data.counting_cell(device=dev)
    assert cell.weight_ih.device.type == dev.type
    state = cell.initial_state(1)
    with torch.no_grad():  # 50 written at once is kept as 50: no tanh squashes the memory or the output
        state, _ = cell(state, torch.tensor([[50.0, 1, 0]], device=dev))
        state, y = cell(state, torch.tensor([[0.0, 0, 1]], device=dev))
    assert abs(y.item() - 50) < 0.01


# ------------------------------------------------------------------ named entities


def test_ner_sentences_are_seeded_and_well_formed_bio():
    a = data.ner_sentences(300, generator=gen(1))
    assert a == data.ner_sentences(300, generator=gen(1)) and a != data.ner_sentences(300, generator=gen(2))
    kinds = Counter()
    for tokens, tags in a:
        assert len(tokens) == len(tags) and set(tags) <= set(data.NER_TAGS)
        for span in tagging.spans_from_tags(tags, "BIO", strict=True):  # raises if ill formed
            name = " ".join(tokens[span.start:span.end])
            kinds[span.type] += 1
            if span.type == "LOC":
                assert name in data.LOCATIONS
            elif span.type == "ORG":
                assert name in data.ORGANISATIONS
            else:
                assert name.split()[0] in data.PERSONS_FIRST + data.PERSONS_LAST and span.end - span.start <= 2
    assert set(kinds) == {"PER", "LOC", "ORG"}


def test_ner_tags_words_inside_names_as_the_name():
    # "of" in "Bank of Sydney" is I-ORG, "Sydney" in it is no LOC; the lecture's example parses
    sentences = data.ner_sentences(3000, generator=gen(3))
    inside = [(t, g) for t, g in sentences if "Bank of Sydney" in " ".join(t)]
    assert inside
    for tokens, tags in inside:
        k = tokens.index("Bank")
        assert tags[k:k + 3] == ["B-ORG", "I-ORG", "I-ORG"]
    lecture = "Jane Villanueva of United Airlines Holding discussed the Chicago route .".split()
    bio = "B-PER I-PER O B-ORG I-ORG I-ORG O O B-LOC O O".split()
    assert tagging.spans_from_tags(bio) == [("PER", 0, 2), ("ORG", 3, 6), ("LOC", 8, 9)]
    assert len(lecture) == len(bio)


def test_heldout_names_appear_in_test_sentences_only():
    held = {w for names in data.HELDOUT_NAMES.values() for name in names for w in name.split()}
    train_words = {w for t, _ in data.ner_sentences(2000, "train", gen(4)) for w in t}
    test_words = {w for t, _ in data.ner_sentences(2000, "test", gen(4)) for w in t}
    assert not held & train_words and held <= test_words
    with pytest.raises(ValueError, match="split"):
        data.ner_sentences(3, "dev")


# ------------------------------------------------------------------ sentiment with negation


def expected_label(tokens):
    """The label by the docstring's rule, recomputed: the clause after the last "but" decides."""
    clause = tokens[len(tokens) - tokens[::-1].index("but"):] if "but" in tokens else tokens
    adjective = [w for w in clause if w in data.POSITIVE + data.NEGATIVE][-1]
    negated = "not" in clause
    return int((adjective in data.POSITIVE) != negated), negated


def test_sentiment_labels_follow_negation_and_but():
    reviews = data.sentiment_sentences(2000, generator=gen(5))
    assert reviews == data.sentiment_sentences(2000, generator=gen(5))
    for tokens, label, negated in reviews:
        assert (label, negated) == expected_label(tokens)
    labels = Counter(label for _, label, _ in reviews)
    negs = Counter(neg for _, _, neg in reviews)
    assert 0.45 < labels[1] / 2000 < 0.55 and 0.45 < negs[True] / 2000 < 0.55
    assert 0.25 < sum("but" in t for t, _, _ in reviews) / 2000 < 0.35


def test_sentiment_options():
    plain = data.sentiment_sentences(300, p_negated=0.0, p_but=0.0, max_intensifiers=0, generator=gen(6))
    for tokens, label, negated in plain:
        assert "not" not in tokens and "but" not in tokens and not negated
        adjectives = [w for w in tokens if w in data.POSITIVE + data.NEGATIVE]
        assert len(adjectives) == 1 and label == (adjectives[0] in data.POSITIVE)
        assert tokens[tokens.index(adjectives[0]) - 1] in ("was", "is", "seemed", "felt")  # no intensifier
    with pytest.raises(ValueError, match="p_negated"):
        data.sentiment_sentences(3, p_negated=1.5)
    with pytest.raises(ValueError, match="positive int"):
        data.sentiment_sentences(0)


# ------------------------------------------------------------------ digit strips


def rows(images):
    return Counter(tuple(im.flatten().tolist()) for im in images)


def test_digit_images_split_is_a_fixed_partition():
    (tr, ytr), (te, yte) = data.digit_images("train"), data.digit_images("test")
    assert tr.shape[1:] == (8, 8) and len(tr) + len(te) == 1797 and len(te) == round(0.25 * 1797)
    assert 0 <= tr.min() and tr.max() <= 1 and ytr.dtype == torch.long
    all_images, _ = data._digits()
    assert rows(tr) + rows(te) == rows(all_images)  # together, every image exactly once
    torch.testing.assert_close(data.digit_images("test")[0], te)  # the same cut every call


@pytest.mark.parametrize("split", ["train", "test"])
def test_digit_strips_hold_the_split_images_in_order(split):
    images, labels = data.digit_images(split)
    known = {tuple(im.T.flatten().tolist()): int(l) for im, l in zip(images, labels)}
    x, targets, lengths = data.digit_strips(16, (2, 4), split, gap=(1, 1), generator=gen(7))
    assert x.shape == (16, int(lengths.max()) * 9 + 1, 8) and targets.shape == (16, int(lengths.max()))
    for b in range(16):
        n = int(lengths[b])
        assert 2 <= n <= 4 and torch.all(targets[b, n:] == 0)
        for k in range(n):  # with gaps of exactly 1, digit k sits at columns 1 + 9k ... 8 + 9k
            columns = x[b, 1 + 9 * k: 9 + 9 * k]
            assert known[tuple(columns.flatten().tolist())] == targets[b, k]  # an image of this split
            assert torch.all(x[b, 9 * k] == 0)  # the gap before it is paper
        assert torch.all(x[b, 9 * n:] == 0)  # after the last digit: paper and padding


def test_digit_strips_seeded_random_gaps_and_device(dev):
    a = data.digit_strips(8, generator=gen(8))
    b = data.digit_strips(8, generator=gen(8), device=dev)
    for u, v in zip(a, b):
        assert v.device.type == dev.type
        torch.testing.assert_close(u, v.cpu())
    x, _, lengths = a
    ink_columns = (x.sum(-1) > 0).sum(1)  # a digit has at most 8 columns with ink
    assert torch.all(ink_columns <= 8 * lengths) and x.shape[1] <= 5 * 8 + 6 * 2
    with pytest.raises(ValueError, match="n_digits"):
        data.digit_strips(2, n_digits=(3, 2))
    with pytest.raises(ValueError, match="split"):
        data.digit_images("valid")


# ------------------------------------------------------------------ scoring and streams


def test_edit_distance_and_label_error_rate():
    assert data.edit_distance("kitten", "sitting") == 3
    assert data.edit_distance([], [1, 2]) == 2 and data.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert data.edit_distance("好棒", "好棒棒") == 1
    assert data.label_error_rate([[1, 2], [3]], [[1, 2, 2], [4]]) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="one hypothesis per reference"):
        data.label_error_rate([[1]], [[1], [2]])


def test_text_streams_are_contiguous_pieces_with_next_tokens():
    ids = torch.arange(103)
    x, y = data.text_streams(ids, 4)
    assert x.shape == y.shape == (4, 25)
    assert torch.equal(x[2], torch.arange(50, 75)) and torch.equal(y, x + 1)
    with pytest.raises(ValueError, match="1-D integer"):
        data.text_streams(torch.rand(10), 2)

"""seqmem.tasks.language and seqmem.tasks.digits (chapter 3): each generated data set is what its
docstring says (seeded, well formed, labels computed independently here)."""
from collections import Counter

import pytest
import torch

from helpers import gen
from seqmem import tagging, tasks
from seqmem.tasks import digits


# ------------------------------------------------------------------ named entities


def test_ner_sentences_are_seeded_and_well_formed_bio():
    a = tasks.ner_sentences(300, generator=gen(1))
    assert a == tasks.ner_sentences(300, generator=gen(1)) and a != tasks.ner_sentences(300, generator=gen(2))
    kinds = Counter()
    for tokens, tags in a:
        assert len(tokens) == len(tags) and set(tags) <= set(tasks.NER_TAGS)
        for span in tagging.spans_from_tags(tags, "BIO", strict=True):  # raises if ill formed
            name = " ".join(tokens[span.start:span.end])
            kinds[span.type] += 1
            if span.type == "LOC":
                assert name in tasks.LOCATIONS
            elif span.type == "ORG":
                assert name in tasks.ORGANISATIONS
            else:
                assert name.split()[0] in tasks.PERSONS_FIRST + tasks.PERSONS_LAST and span.end - span.start <= 2
    assert set(kinds) == {"PER", "LOC", "ORG"}


def test_ner_tags_words_inside_names_as_the_name():
    # "of" in "Bank of Sydney" is I-ORG, "Sydney" in it is no LOC; the lecture's example parses
    sentences = tasks.ner_sentences(3000, generator=gen(3))
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
    held = {w for names in tasks.HELDOUT_NAMES.values() for name in names for w in name.split()}
    train_words = {w for t, _ in tasks.ner_sentences(2000, "train", gen(4)) for w in t}
    test_words = {w for t, _ in tasks.ner_sentences(2000, "test", gen(4)) for w in t}
    assert not held & train_words and held <= test_words
    with pytest.raises(ValueError, match="split"):
        tasks.ner_sentences(3, "dev")


# ------------------------------------------------------------------ sentiment with negation


def expected_label(tokens):
    """The label by the docstring's rule, recomputed: the clause after the last "but" decides."""
    clause = tokens[len(tokens) - tokens[::-1].index("but"):] if "but" in tokens else tokens
    adjective = [w for w in clause if w in tasks.POSITIVE + tasks.NEGATIVE][-1]
    negated = "not" in clause
    return int((adjective in tasks.POSITIVE) != negated), negated


def test_sentiment_labels_follow_negation_and_but():
    reviews = tasks.sentiment_sentences(2000, generator=gen(5))
    assert reviews == tasks.sentiment_sentences(2000, generator=gen(5))
    for tokens, label, negated in reviews:
        assert (label, negated) == expected_label(tokens)
    labels = Counter(label for _, label, _ in reviews)
    negs = Counter(neg for _, _, neg in reviews)
    assert 0.45 < labels[1] / 2000 < 0.55 and 0.45 < negs[True] / 2000 < 0.55
    assert 0.25 < sum("but" in t for t, _, _ in reviews) / 2000 < 0.35


def test_sentiment_options():
    plain = tasks.sentiment_sentences(300, p_negated=0.0, p_but=0.0, max_intensifiers=0, generator=gen(6))
    for tokens, label, negated in plain:
        assert "not" not in tokens and "but" not in tokens and not negated
        adjectives = [w for w in tokens if w in tasks.POSITIVE + tasks.NEGATIVE]
        assert len(adjectives) == 1 and label == (adjectives[0] in tasks.POSITIVE)
        assert tokens[tokens.index(adjectives[0]) - 1] in ("was", "is", "seemed", "felt")  # no intensifier
    with pytest.raises(ValueError, match="p_negated"):
        tasks.sentiment_sentences(3, p_negated=1.5)
    with pytest.raises(ValueError, match="positive int"):
        tasks.sentiment_sentences(0)


# ------------------------------------------------------------------ digit strips


def rows(images):
    return Counter(tuple(im.flatten().tolist()) for im in images)


def test_digit_images_split_is_a_fixed_partition():
    (tr, ytr), (te, yte) = tasks.digit_images("train"), tasks.digit_images("test")
    assert tr.shape[1:] == (8, 8) and len(tr) + len(te) == 1797 and len(te) == round(0.25 * 1797)
    assert 0 <= tr.min() and tr.max() <= 1 and ytr.dtype == torch.long
    all_images, _ = digits._digits()
    assert rows(tr) + rows(te) == rows(all_images)  # together, every image exactly once
    torch.testing.assert_close(tasks.digit_images("test")[0], te)  # the same cut every call


@pytest.mark.parametrize("split", ["train", "test"])
def test_digit_strips_hold_the_split_images_in_order(split):
    images, labels = tasks.digit_images(split)
    known = {tuple(im.T.flatten().tolist()): int(l) for im, l in zip(images, labels)}
    x, targets, lengths = tasks.digit_strips(16, (2, 4), split, gap=(1, 1), generator=gen(7))
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
    a = tasks.digit_strips(8, generator=gen(8))
    b = tasks.digit_strips(8, generator=gen(8), device=dev)
    for u, v in zip(a, b):
        assert v.device.type == dev.type
        torch.testing.assert_close(u, v.cpu())
    x, _, lengths = a
    ink_columns = (x.sum(-1) > 0).sum(1)  # a digit has at most 8 columns with ink
    assert torch.all(ink_columns <= 8 * lengths) and x.shape[1] <= 5 * 8 + 6 * 2
    with pytest.raises(ValueError, match="n_digits"):
        tasks.digit_strips(2, n_digits=(3, 2))
    with pytest.raises(ValueError, match="split"):
        tasks.digit_images("valid")

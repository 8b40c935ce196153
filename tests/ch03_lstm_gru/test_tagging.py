"""seqmem.tagging and metrics.span_scores (chapter 3): IO/BIO/BIOES tags and spans, conversions, and
CoNLL-style span scores.

Hand-worked examples (the lecture's table), round trips between schemes, the documented reading
of ill-formed sequences, and exact precision / recall / F1 fractions.
"""
import random

import pytest

from seqmem import metrics, tagging
from seqmem.tagging import Span

# The seed's table (lecture on RNNs for NLP): one sentence in the three schemes.
WORDS = "Jane Villanueva of United Airlines Holding discussed the Chicago route .".split()
IO = ["I-PER", "I-PER", "O", "I-ORG", "I-ORG", "I-ORG", "O", "O", "I-LOC", "O", "O"]
BIO = ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "B-LOC", "O", "O"]
BIOES = ["B-PER", "E-PER", "O", "B-ORG", "I-ORG", "E-ORG", "O", "O", "S-LOC", "O", "O"]
SPANS = [Span("PER", 0, 2), Span("ORG", 3, 6), Span("LOC", 8, 9)]
TABLE = {"IO": IO, "BIO": BIO, "BIOES": BIOES}


@pytest.mark.parametrize("scheme", ["IO", "BIO", "BIOES"])
def test_the_lecture_table_spans_and_tags(scheme):
    tags = TABLE[scheme]
    assert tagging.spans_from_tags(tags, scheme) == SPANS
    assert tagging.spans_from_tags(tags, scheme, strict=True) == SPANS
    assert tagging.tags_from_spans(SPANS, len(WORDS), scheme) == tags
    assert [" ".join(WORDS[s.start:s.end]) for s in SPANS] == ["Jane Villanueva", "United Airlines Holding", "Chicago"]


@pytest.mark.parametrize("source", ["IO", "BIO", "BIOES"])
@pytest.mark.parametrize("target", ["IO", "BIO", "BIOES"])
def test_conversions_between_the_table_columns(source, target):
    assert tagging.convert_tags(TABLE[source], source, target) == TABLE[target]


def _random_spans(rng, length, types=("PER", "ORG", "LOC")):
    """Random non-overlapping spans, adjacent ones included."""
    spans, i = [], 0
    while i < length:
        if rng.random() < 0.5:
            end = min(length, i + rng.randint(1, 4))
            spans.append(Span(rng.choice(types), i, end))
            i = end
        else:
            i += rng.randint(1, 2)
    return spans


@pytest.mark.parametrize("seed", range(20))
def test_round_trips(seed):
    rng = random.Random(seed)
    spans = _random_spans(rng, 15)
    bio, bioes = tagging.tags_from_spans(spans, 15, "BIO"), tagging.tags_from_spans(spans, 15, "BIOES")
    # BIO and BIOES keep every span: spans -> tags -> spans, and tags -> other scheme -> tags
    assert tagging.spans_from_tags(bio, "BIO", strict=True) == spans
    assert tagging.spans_from_tags(bioes, "BIOES", strict=True) == spans
    assert tagging.convert_tags(bio, "BIO", "BIOES") == bioes
    assert tagging.convert_tags(bioes, "BIOES", "BIO") == bio
    # IO keeps them unless two spans of one type touch, which it merges
    io_spans = tagging.spans_from_tags(tagging.tags_from_spans(spans, 15, "IO"), "IO")
    touching = any(a.end == b.start and a.type == b.type for a, b in zip(spans, spans[1:]))
    assert (io_spans == spans) == (not touching)


def test_io_merges_adjacent_spans_of_one_type():
    spans = [Span("PER", 0, 1), Span("PER", 1, 3), Span("ORG", 3, 4)]
    assert tagging.tags_from_spans(spans, 4, "BIO") == ["B-PER", "B-PER", "I-PER", "B-ORG"]
    io = tagging.tags_from_spans(spans, 4, "IO")
    assert io == ["I-PER", "I-PER", "I-PER", "I-ORG"]
    assert tagging.spans_from_tags(io, "IO") == [Span("PER", 0, 3), Span("ORG", 3, 4)]


@pytest.mark.parametrize("tags,scheme,spans", [
    # an inside without a beginning starts a span (conlleval)
    (["O", "I-PER", "I-PER", "O"], "BIO", [Span("PER", 1, 3)]),
    (["I-PER", "O"], "BIO", [Span("PER", 0, 1)]),
    # a type change inside a span: two spans
    (["B-PER", "I-ORG", "I-ORG"], "BIO", [Span("PER", 0, 1), Span("ORG", 1, 3)]),
    # BIOES: an unclosed B, a stray E, an I after a closed span
    (["B-PER", "O"], "BIOES", [Span("PER", 0, 1)]),
    (["O", "E-LOC"], "BIOES", [Span("LOC", 1, 2)]),
    (["B-ORG", "E-ORG", "I-ORG", "E-ORG"], "BIOES", [Span("ORG", 0, 2), Span("ORG", 2, 4)]),
    (["B-PER", "B-PER", "E-PER"], "BIOES", [Span("PER", 0, 1), Span("PER", 1, 3)]),
    (["B-PER", "I-PER"], "BIOES", [Span("PER", 0, 2)]),
])
def test_ill_formed_sequences_are_read_as_conlleval_does(tags, scheme, spans):
    assert tagging.spans_from_tags(tags, scheme) == spans
    with pytest.raises(ValueError, match=f"ill-formed {scheme}"):
        tagging.spans_from_tags(tags, scheme, strict=True)


def test_repairing_by_conversion():
    assert tagging.convert_tags(["O", "I-PER", "I-PER", "B-LOC"], "BIO", "BIO") == ["O", "B-PER", "I-PER", "B-LOC"]
    with pytest.raises(ValueError, match="I-PER at position 1"):
        tagging.convert_tags(["O", "I-PER"], "BIO", "BIOES", strict=True)


def test_io_has_no_ill_formed_order():
    tags = ["I-PER", "I-ORG", "O", "I-PER"]
    expected = [Span("PER", 0, 1), Span("ORG", 1, 2), Span("PER", 3, 4)]
    assert tagging.spans_from_tags(tags, "IO", strict=True) == expected


def test_types_may_contain_dashes():
    assert tagging.spans_from_tags(["B-GPE-city", "I-GPE-city"]) == [Span("GPE-city", 0, 2)]


def test_span_scores_hand_worked():
    # gold: PER [0,2), ORG [3,6), LOC [8,9). pred: PER right, ORG one token short, LOC right, and
    # a spurious MISC: 2 correct of 4 predicted and 3 gold. P = 1/2, R = 2/3, F1 = 2PR/(P+R) = 4/7.
    pred = ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-MISC", "O", "B-LOC", "O", "O"]
    s = metrics.span_scores(BIO, pred)
    assert (s.correct, s.predicted, s.gold) == (2, 4, 3)
    assert s.precision == pytest.approx(1 / 2) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(4 / 7)
    total, per_type = metrics.span_scores(BIO, pred, by_type=True)
    assert total == s
    assert per_type["PER"].f1 == 1.0 and per_type["LOC"].f1 == 1.0
    assert per_type["ORG"] == (0.0, 0.0, 0.0, 0, 1, 1)
    assert per_type["MISC"] == (0.0, 0.0, 0.0, 0, 1, 0)


def test_span_scores_over_sentences_match_within_sentences():
    # The same span in two different sentences is two spans: predicting it in the wrong sentence
    # is wrong twice (a false positive there, a miss here).
    gold = [["B-PER", "O"], ["O", "O"]]
    pred = [["O", "O"], ["B-PER", "O"]]
    assert metrics.span_scores(gold, pred) == (0.0, 0.0, 0.0, 0, 1, 1)
    assert metrics.span_scores(gold, gold).f1 == 1.0
    assert metrics.span_scores([["O"]], [["O"]]) == (0.0, 0.0, 0.0, 0, 0, 0)


def test_span_scores_agree_in_bio_and_bioes():
    pred_bio = ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-MISC", "O", "B-LOC", "O", "O"]
    gold, pred = (tagging.convert_tags(t, "BIO", "BIOES") for t in (BIO, pred_bio))
    assert metrics.span_scores(gold, pred, "BIOES") == metrics.span_scores(BIO, pred_bio, "BIO")


def test_boundary_errors_count_as_wrong():
    # exact match only: a span one token too long is a false positive and a miss
    s = metrics.span_scores(["B-LOC", "O"], ["B-LOC", "I-LOC"])
    assert (s.correct, s.predicted, s.gold, s.f1) == (0, 1, 1, 0.0)


@pytest.mark.parametrize("call,match", [
    (lambda: tagging.spans_from_tags(["S-PER"], "BIO"), r"'S-PER' at position 0 is not a BIO tag"),
    (lambda: tagging.spans_from_tags(["O", "B-PER"], "IO"), r"not a IO tag"),
    (lambda: tagging.spans_from_tags(["PER"], "BIO"), "not a BIO tag"),
    (lambda: tagging.spans_from_tags(["B-"], "BIO"), "not a BIO tag"),
    (lambda: tagging.spans_from_tags(["O"], "BILOU"), "scheme must be one of"),
    (lambda: tagging.tags_from_spans([("PER", 0, 2), ("ORG", 1, 3)], 4), "overlap"),
    (lambda: tagging.tags_from_spans([("PER", 2, 2)], 4), "start < end"),
    (lambda: tagging.tags_from_spans([("PER", 3, 5)], 4), "end <= length=4"),
    (lambda: tagging.tags_from_spans([("PER", 0, 1)], -1), "length"),
    (lambda: metrics.span_scores(["O", "O"], ["O"]), "same sentences and lengths"),
])
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()

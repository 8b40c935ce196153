"""seqmem.metrics for sequence to sequence (chapter 4): exact match, token accuracy and BLEU.

BLEU is checked three ways: the paper's own examples of modified precision, one corpus worked
out by hand, and sacrebleu (``tokenize="none"``) on seeded random corpora, to 1e-9."""
import math
import random

import pytest
import sacrebleu

from seqmem import metrics


def split(*sentences):
    return [s.split() for s in sentences]


# ------------------------------------------------------------------ exact match, token accuracy


def test_exact_match_counts_whole_sequences():
    refs = split("a b c", "d e", "f")
    assert metrics.exact_match(split("a b c", "d e", "f"), refs) == 1.0
    assert metrics.exact_match(split("a b c", "d e f", "g"), refs) == pytest.approx(1 / 3)
    assert metrics.exact_match([("a", "b", "c")], [["a", "b", "c"]]) == 1.0  # tuples and lists alike
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        metrics.exact_match(refs, refs[:2])
    with pytest.raises(ValueError, match="none"):
        metrics.exact_match([], [])


def test_token_accuracy_counts_missing_and_extra_positions_wrong():
    assert metrics.token_accuracy(split("a b c"), split("a x c d")) == 2 / 4  # d is missing
    assert metrics.token_accuracy(split("a b c d e"), split("a b")) == 2 / 5  # c d e are extra
    assert metrics.token_accuracy(split("a b", "c"), split("a b", "d")) == 2 / 3
    assert metrics.token_accuracy([[1, 2, 3]], [[1, 2, 3]]) == 1.0
    with pytest.raises(ValueError, match="empty"):
        metrics.token_accuracy([[]], [[]])
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        metrics.token_accuracy([[1]], [[1], [2]])


# ------------------------------------------------------------------ BLEU from its definition

# Papineni et al. (2002), section 2.1, example 1 (lowercased, the full stop dropped)
CANDIDATES = split("it is a guide to action which ensures that the military always obeys the commands of the party",
                   "it is to insure the troops forever hearing the activity guidebook that party direct")
REFERENCES = split("it is a guide to action that ensures that the military will forever heed party commands",
                   "it is the guiding principle which guarantees the military forces always being under the "
                   "command of the party",
                   "it is the practical guide for the army always to heed the directions of the party")


def test_modified_precision_reproduces_the_papers_examples():
    assert metrics.modified_precision(CANDIDATES[:1], [REFERENCES], 1) == (17, 18)
    assert metrics.modified_precision(CANDIDATES[:1], [REFERENCES], 2) == (10, 17)
    assert metrics.modified_precision(CANDIDATES[1:], [REFERENCES], 1) == (8, 14)
    assert metrics.modified_precision(CANDIDATES[1:], [REFERENCES], 2) == (1, 13)
    # example 2: "the" seven times, clipped by its largest count in one reference (2)
    refs = split("the cat is on the mat", "there is a cat on the mat")
    assert metrics.modified_precision(split("the the the the the the the"), [refs], 1) == (2, 7)
    # summed over the corpus: both candidates against the same references
    assert metrics.modified_precision(CANDIDATES, [REFERENCES, REFERENCES], 1) == (25, 32)


def test_ngram_counts_and_brevity_penalty():
    assert metrics.ngram_counts("a b a b".split(), 2) == {("a", "b"): 2, ("b", "a"): 1}
    assert metrics.ngram_counts(["a"], 2) == {}
    assert metrics.brevity_penalty(5, 6) == pytest.approx(math.exp(-0.2))
    assert metrics.brevity_penalty(6, 5) == metrics.brevity_penalty(4, 4) == 1.0
    assert metrics.brevity_penalty(0, 3) == 0.0
    with pytest.raises(ValueError, match="positive int"):
        metrics.ngram_counts(["a"], 0)


def test_bleu_of_a_small_corpus_by_hand():
    # hypothesis "a b c d e", reference "a b c d f g":
    # p1 = 4/5 (a b c d), p2 = 3/4 (ab bc cd), p3 = 2/3 (abc bcd), p4 = 1/2 (abcd)
    # c = 5 < r = 6, so BP = exp(1 - 6/5); BLEU = 100 BP (4/5 3/4 2/3 1/2)^(1/4) = 100 exp(-0.2) 0.2^(1/4)
    hyp, ref = split("a b c d e"), split("a b c d f g")
    assert [metrics.modified_precision(hyp, ref, n) for n in (1, 2, 3, 4)] == [(4, 5), (3, 4), (2, 3), (1, 2)]
    expected = 100 * math.exp(-0.2) * 0.2 ** 0.25
    assert metrics.corpus_bleu(hyp, ref) == pytest.approx(expected, abs=1e-12)
    assert metrics.corpus_bleu(hyp, ref, smooth="none") == pytest.approx(expected, abs=1e-12)
    assert metrics.corpus_bleu(split("a b c d"), split("a b c d")) == pytest.approx(100.0)
    # no 4-gram matches: "exp" gives p4 = 1 / (2 * 2) for the first order without one, "none" gives 0
    hyp, ref = split("a b c x e"), split("a b c d e")
    smoothed = 100 * (4 / 5 * 2 / 4 * 1 / 3 * 1 / (2 * 2)) ** 0.25
    assert metrics.corpus_bleu(hyp, ref) == pytest.approx(smoothed, abs=1e-12)
    assert metrics.corpus_bleu(hyp, ref, smooth="none") == 0.0


def sacre(hyps, refs, max_n=4, smooth="exp"):
    """sacrebleu's corpus BLEU of token lists; refs: one list of references per hypothesis."""
    streams = [[" ".join(r[k]) for r in refs] for k in range(len(refs[0]))]
    hyps = [" ".join(h) for h in hyps]
    if max_n == 4:
        return sacrebleu.corpus_bleu(hyps, streams, tokenize="none", smooth_method=smooth).score
    bleu = sacrebleu.metrics.BLEU(tokenize="none", smooth_method=smooth, max_ngram_order=max_n)
    return bleu.corpus_score(hyps, streams).score


def random_corpus(seed, n_sentences, vocab_size, max_len, n_refs=1, keep=0.7):
    """Seeded random hypotheses and references: near copies, each token kept with probability
    ``keep`` (else swapped), some dropped, some added at the end."""
    rng = random.Random(seed)
    words = [f"w{k}" for k in range(vocab_size)]
    hyps, refs = [], []
    for _ in range(n_sentences):
        ref = [rng.choice(words) for _ in range(rng.randint(0, max_len))]
        hyp = [w if rng.random() < keep else rng.choice(words) for w in ref if rng.random() < 0.9]
        hyp += [rng.choice(words) for _ in range(rng.choice([0, 0, 1, 3]))]  # some longer than the reference
        others = [[rng.choice(words) for _ in range(rng.randint(0, max_len))] for _ in range(n_refs - 1)]
        hyps.append(hyp)
        refs.append([ref, *others])
    return hyps, refs


CORPORA = [  # (seed, sentences, vocabulary, longest reference, references per hypothesis, keep)
    (0, 30, 5, 12, 1), (1, 30, 20, 12, 1), (2, 5, 50, 6, 1), (3, 50, 8, 25, 1), (4, 1, 4, 6, 1),
    (5, 20, 6, 10, 2), (6, 20, 30, 10, 3), (7, 3, 200, 8, 1), (8, 10, 3, 4, 1), (9, 40, 100, 15, 2),
    (10, 6, 200, 8, 1, 0.3), (11, 4, 100, 10, 2, 0.4), (12, 10, 500, 12, 1, 0.2),  # few long matches
]


@pytest.mark.parametrize("smooth", ["exp", "none"])
@pytest.mark.parametrize("max_n", [4, 2, 3])
@pytest.mark.parametrize("corpus", CORPORA)
def test_corpus_bleu_equals_sacrebleu(corpus, max_n, smooth):
    hyps, refs = random_corpus(*corpus)
    ours = metrics.corpus_bleu(hyps, [r if len(r) > 1 else r[0] for r in refs], max_n=max_n, smooth=smooth)
    assert ours == pytest.approx(sacre(hyps, refs, max_n, smooth), abs=1e-9, rel=0)


def test_the_random_corpora_cover_the_hard_cases():
    stats = []
    for corpus in CORPORA:
        hyps, refs = random_corpus(*corpus)
        counts = [metrics.modified_precision(hyps, refs, n) for n in (1, 2, 3, 4)]
        longer = any(len(h) > len(r[0]) for h, r in zip(hyps, refs))
        shorter = sum(map(len, hyps)) < sum(len(r[0]) for r in refs)
        stats.append((counts, longer, shorter, any(not h for h in hyps)))
    assert any(longer for _, longer, _, _ in stats) and any(shorter for _, _, shorter, _ in stats)
    assert any(empty for *_, empty in stats)  # an empty hypothesis somewhere
    # some order with n-grams but no match, so that the smoothing matters
    assert sum(c[3][0] == 0 < c[3][1] and c[0][0] > 0 for c, *_ in stats) >= 2
    assert any(metrics.corpus_bleu(*random_corpus(*c)) > 20 for c in CORPORA)  # and some high scores


@pytest.mark.parametrize("hyps, refs", [
    (split("a b c"), split("a b c d e")),  # shorter than 4 tokens: no 4-grams at all
    ([[], []], split("a b c d", "e f")),  # empty output
    (split("x y z w v"), split("a b c d e")),  # nothing matches
    (split("a b c d e", ""), split("a b c d e", "a b")),  # one empty hypothesis among good ones
    (split("a b c d e f g h"), split("a b c d")),  # longer than the reference
])
@pytest.mark.parametrize("smooth", ["exp", "none"])
def test_corpus_bleu_edge_cases_equal_sacrebleu(hyps, refs, smooth):
    ours = metrics.corpus_bleu(hyps, refs, smooth=smooth)
    assert ours == pytest.approx(sacre(hyps, [[r] for r in refs], 4, smooth), abs=1e-9, rel=0)


def test_several_references_clip_by_the_largest_count_and_take_the_closest_length():
    hyp = split("the the cat")
    refs = [split("the cat sat on a mat", "the the cat")]  # a list of lists: two references
    assert metrics.modified_precision(hyp, refs, 1) == (3, 3)  # "the" twice in the second one
    assert metrics.corpus_bleu(hyp, refs, max_n=2) == pytest.approx(100.0)  # closest length 3: BP = 1
    # two references as close (2 and 4 tokens for a 3-token hypothesis): the shorter one, so BP = 1
    assert metrics.corpus_bleu(split("a b c"), [split("a b", "a b c d")], max_n=1) == pytest.approx(100.0)


def test_corpus_bleu_checks_its_arguments():
    with pytest.raises(ValueError, match="smooth"):
        metrics.corpus_bleu(split("a"), split("a"), smooth="floor")
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        metrics.corpus_bleu(split("a", "b"), split("a"))
    with pytest.raises(ValueError, match="max_n"):
        metrics.corpus_bleu(split("a"), split("a"), max_n=0)

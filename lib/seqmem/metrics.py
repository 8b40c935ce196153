"""How well a model does: accuracy, span F1, perplexity, edit distance, and BLEU.

- ``accuracy(scores, targets, mask)``: the fraction of labelled steps (or examples) predicted
  right, the steps labelled ``IGNORE_INDEX`` (padding, unlabelled steps) left out.
- ``span_scores(gold, pred)``: exact-match span precision, recall and F1 of BIO, BIOES or IO tags
  (``seqmem.tagging`` reads the spans), as CoNLL's evaluation script ``conlleval`` counts them.
- ``perplexity(model, ids)`` and ``bits_per_char(model, ids)``: how surprised a recurrent
  language model is by a held-out text, read in chunks with the state carried through; a model
  that knows nothing (uniform over V tokens) has perplexity V, log2(V) bits per character.
- ``edit_distance`` and ``label_error_rate``: of transcriptions against references (CTC, chapter 3).
- ``exact_match``, ``token_accuracy`` and ``corpus_bleu``: of decoded sequences against references
  (sequence to sequence, chapter 4). BLEU is written from its definition (Papineni et al. 2002):
  ``ngram_counts``, the clipped ``modified_precision``, the ``brevity_penalty``; tested equal to
  sacrebleu's ``corpus_bleu`` with ``tokenize="none"``. Sequences here are lists of tokens (any
  hashable values: words, characters, ids), such as ``vocab.decode(strip_special(ids))`` gives.

``span_scores`` counts a predicted span correct only if a gold span has the same type,
start and end (CoNLL's exact match): precision = correct / predicted, recall = correct / gold,
F1 = 2PR / (P + R), each 0 when its denominator is 0 (as ``conlleval`` reports them).

Dimensions: B batch, T time, C classes, N tokens of a text.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import NamedTuple, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .core import IGNORE_INDEX, check_positive_int
from .tagging import spans_from_tags

__all__ = ["accuracy", "Scores", "span_scores", "perplexity", "bits_per_char", "perplexity_of",
           "edit_distance", "label_error_rate", "exact_match", "token_accuracy", "ngram_counts",
           "modified_precision", "brevity_penalty", "corpus_bleu"]


def accuracy(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """The fraction of labelled steps whose prediction is the target.

    Args:
        scores: (..., C) scores (logits or probabilities; the prediction is their argmax), or
            (...) predicted class ids.
        targets: (...) class ids; ``IGNORE_INDEX`` marks a step without a label.
        mask: (...) bool, True where a step counts (default: every labelled step).
    """
    predicted = scores.argmax(-1) if scores.dim() == targets.dim() + 1 else scores
    if predicted.shape != targets.shape:
        raise ValueError(f"scores (..., C) or predictions (...) must match targets (...), got "
                         f"{tuple(scores.shape)} and {tuple(targets.shape)}")
    counts = targets != IGNORE_INDEX
    if mask is not None:
        counts = counts & mask
    if not counts.any():
        raise ValueError("accuracy: no step has a label (all are IGNORE_INDEX or masked out)")
    return (predicted == targets)[counts].float().mean().item()


class Scores(NamedTuple):
    """Span-level precision, recall and F1, and the counts they come from."""

    precision: float
    recall: float
    f1: float
    correct: int
    predicted: int
    gold: int


def _sentences(tags) -> list[Sequence[str]]:
    """One sentence (a list of tags) or many (a list of lists) -> a list of sentences."""
    if len(tags) == 0 or isinstance(tags[0], str):
        return [tags]
    return list(tags)


def _span_set(sentences, scheme: str, strict: bool) -> set:
    return {(n, *span) for n, tags in enumerate(sentences) for span in spans_from_tags(tags, scheme, strict)}


def _scores(correct: int, predicted: int, gold: int) -> Scores:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, correct, predicted, gold)


def span_scores(gold, pred, scheme: str = "BIO", by_type: bool = False, strict: bool = False):
    """Exact-match span precision, recall and F1 of predicted tags against gold tags.

    Args:
        gold, pred: one sentence's tags, or a list of sentences' tags; sentence by sentence of
            equal lengths. Spans are matched within their own sentence only.
        scheme: the scheme both are written in.
        by_type: also score each span type on its own.
        strict: raise on ill-formed sequences instead of repairing them.

    Returns:
        ``Scores`` over all spans; with ``by_type``, a pair ``(Scores, {type: Scores})``.
    """
    gold_s, pred_s = _sentences(gold), _sentences(pred)
    if [len(s) for s in gold_s] != [len(s) for s in pred_s]:
        raise ValueError(f"gold and pred must have the same sentences and lengths, got lengths "
                         f"{[len(s) for s in gold_s]} and {[len(s) for s in pred_s]}")
    g, p = _span_set(gold_s, scheme, strict), _span_set(pred_s, scheme, strict)
    total = _scores(len(g & p), len(p), len(g))
    if not by_type:
        return total
    types = sorted({s[1] for s in g | p})
    per_type = {}
    for kind in types:
        g_k, p_k = {s for s in g if s[1] == kind}, {s for s in p if s[1] == kind}
        per_type[kind] = _scores(len(g_k & p_k), len(p_k), len(g_k))
    return total, per_type


# ------------------------------------------------------------------ language models


def perplexity_of(mean_nll: float) -> float:
    """exp(mean NLL) as a perplexity; inf for a diverged model (math.exp overflows past ~709)."""
    return math.exp(mean_nll) if mean_nll < 709.0 else math.inf


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _mean_nll(model: nn.Module, ids: torch.Tensor, chunk_len: int, batch_size: int) -> float:
    """The mean negative log-likelihood (nats) of tokens 1 ... N - 1 of ``ids``, each given its past."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.dtype.is_floating_point:
        got = (tuple(ids.shape), ids.dtype) if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D integer tensor (N,), got {got}")
    n = (len(ids) - 1) // batch_size  # steps per piece
    if n < 1:
        raise ValueError(f"perplexity needs more than batch_size={batch_size} ids, got {len(ids)}")
    ids = ids.to(_device_of(model))
    x = ids[: n * batch_size].view(batch_size, n)  # (B, n): piece b starts at b * n
    y = ids[1 : n * batch_size + 1].view(batch_size, n)  # (B, n): the token after each of x
    was_training, h, nll = model.training, None, 0.0
    model.eval()
    for j in range(0, n, chunk_len):
        logits, h = model(x[:, j : j + chunk_len], h)  # (B, chunk, V)
        nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, j : j + chunk_len].reshape(-1),
                               reduction="sum").item()
    model.train(was_training)
    return nll / (n * batch_size)


def perplexity(model: nn.Module, ids: torch.Tensor, chunk_len: int = 256, batch_size: int = 1) -> float:
    """Perplexity of a recurrent LM on a held-out text, the state carried from chunk to chunk.

    exp(-(1/N) Σ_t log P(w_t | w_1 ... w_{t-1})). Tokens 1 ... N - 1 are predicted from everything
    before them (token 0 has no past, so it is not scored). The text is read in chunks of
    ``chunk_len`` steps, handing each chunk's final state to the next, so that the result equals
    one pass over the whole text but memory stays small. ``batch_size`` B > 1 cuts the text into
    B contiguous pieces read side by side (faster; each piece starts from the zero state, and up
    to B - 1 tokens at the end are dropped). A diverged model has perplexity inf.

    Args:
        model: ``logits, h = model(x, h)`` with x (B, T) ids, such as ``seqmem.lm.CharRNNLM``.
        ids: (N,) int64 token ids.
    """
    return perplexity_of(_mean_nll(model, ids, chunk_len, batch_size))


def bits_per_char(model: nn.Module, ids: torch.Tensor, chunk_len: int = 256, batch_size: int = 1) -> float:
    """The mean surprise of a character LM in bits, log2 of ``perplexity``: ``perplexity``'s reading
    of the text, its mean NLL divided by ln 2 (inf or nan for a diverged model, never an error)."""
    return _mean_nll(model, ids, chunk_len, batch_size) / math.log(2)


# ------------------------------------------------------------------ transcriptions


def edit_distance(a: Sequence, b: Sequence) -> int:
    """The Levenshtein distance: the fewest insertions, deletions and substitutions from a to b."""
    prev = list(range(len(b) + 1))  # distances from a[:0] to each prefix of b
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def label_error_rate(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """The label error rate: total edit distance over total reference length (Graves et al. 2006)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"need one hypothesis per reference, got {len(hypotheses)} and {len(references)}")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references are all empty: the label error rate is undefined")
    return sum(edit_distance(h, r) for h, r in zip(hypotheses, references)) / total


# ------------------------------------------------------------------ sequence to sequence


def _check_corpus(hypotheses: Sequence, references: Sequence) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"need one reference per hypothesis, got {len(hypotheses)} hypotheses and "
                         f"{len(references)} references")
    if len(hypotheses) == 0:
        raise ValueError("need at least one hypothesis and reference, got none")


def exact_match(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """The fraction of hypotheses equal to their reference, token for token (lengths included)."""
    _check_corpus(hypotheses, references)
    return sum(list(h) == list(r) for h, r in zip(hypotheses, references)) / len(references)


def token_accuracy(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """Position-wise accuracy of hypotheses against references, lengths counted.

    Over every sentence pair, position t is right when both have a token there and the tokens are
    equal; a position that only one of them has (a missing token of a short hypothesis, an extra
    token of a long one) is wrong. So the score is

        sum_b #{t : h_b[t] == r_b[t]} / sum_b max(len h_b, len r_b),

    which for hypotheses of the references' lengths is the fraction of reference tokens predicted
    right. One token shifted counts every later position wrong; ``edit_distance`` forgives shifts.
    """
    _check_corpus(hypotheses, references)
    right = sum(sum(x == y for x, y in zip(h, r)) for h, r in zip(hypotheses, references))
    positions = sum(max(len(h), len(r)) for h, r in zip(hypotheses, references))
    if positions == 0:
        raise ValueError("every hypothesis and reference is empty: token accuracy is undefined")
    return right / positions


# BLEU (Papineni et al. 2002): a corpus's modified n-gram precisions p_1 ... p_N, combined by a
# geometric mean and scaled by a brevity penalty,
#
#     BLEU = BP * exp(sum_n w_n log p_n),   w_n = 1 / N,   BP = 1 if c > r else exp(1 - r / c),
#
# c the total hypothesis length, r the sum over sentences of the reference length closest to the
# hypothesis's. Counted over the whole corpus, not averaged over sentences.


def ngram_counts(tokens: Sequence, n: int) -> Counter:
    """How often each n-gram (a tuple of n tokens) occurs in ``tokens``; empty if len < n."""
    check_positive_int("n", n)
    tokens = list(tokens)
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _reference_list(reference: Sequence) -> list[list]:
    """One reference (a sequence of tokens) or several (a non-empty list of lists) -> a list of them.

    Tokens are hashable, so a list can never be a token: a list of lists is several references."""
    if isinstance(reference, list) and reference and all(isinstance(r, list) for r in reference):
        return reference
    return [list(reference)]


def _clipped_counts(hypothesis: Sequence, references: list[list], n: int) -> tuple[int, int]:
    """Paper section 2.1.1: each n-gram of the hypothesis counts at most as often as it occurs in
    the reference that has it most often."""
    hyp = ngram_counts(hypothesis, n)
    most = Counter()
    for ref in references:
        most |= ngram_counts(ref, n)  # | keeps the larger count of each n-gram
    return sum(min(count, most[g]) for g, count in hyp.items()), sum(hyp.values())


def modified_precision(hypotheses: Sequence[Sequence], references: Sequence, n: int) -> tuple[int, int]:
    """The corpus's modified n-gram precision p_n as its two counts: (clipped matches, total).

    p_n = sum over sentences of the clipped n-gram matches / sum of the hypotheses' n-gram counts
    (Papineni et al. 2002, equation 1). Each reference is a sequence of tokens, or a list of such
    lists for several references of one hypothesis. The total is 0 when no hypothesis is n tokens
    long.
    """
    _check_corpus(hypotheses, references)
    counts = [_clipped_counts(h, _reference_list(r), n) for h, r in zip(hypotheses, references)]
    return sum(m for m, _ in counts), sum(t for _, t in counts)


def brevity_penalty(c: int, r: int) -> float:
    """BP = 1 if c > r else exp(1 - r / c): c the hypotheses' total length, r the effective
    reference length. An empty output (c = 0) gets 0; 1 when c = r."""
    if c < 0 or r < 0:
        raise ValueError(f"lengths must be non-negative, got c={c}, r={r}")
    if c >= r:
        return 1.0
    return math.exp(1 - r / c) if c > 0 else 0.0


def _closest_length(hyp_len: int, references: list[list]) -> int:
    """The reference length closest to the hypothesis's; of two as close, the shorter (as sacrebleu)."""
    return min((abs(len(ref) - hyp_len), len(ref)) for ref in references)[1]


def corpus_bleu(hypotheses: Sequence[Sequence], references: Sequence, max_n: int = 4,
                smooth: str = "exp") -> float:
    """Corpus BLEU on the 0-100 scale, as ``sacrebleu.corpus_bleu(..., tokenize="none")`` gives it.

    Args:
        hypotheses: B token sequences (tokens are any hashable values, compared as they are).
        references: B references, each a token sequence or a list of token lists (several
            references: an n-gram is clipped by its largest count in any of them).
        max_n: N, the longest n-gram; the weights are uniform, w_n = 1 / N.
        smooth: "exp" (sacrebleu's default, NIST's mteval-v13a): the k-th order with no match
            gets precision 1 / (2^k * total) instead of 0; "none": a zero precision gives BLEU 0.

    Returns 0 when no n-gram of any order matches, or when some order has no n-grams at all
    (every hypothesis shorter than N), both as sacrebleu does.
    """
    if smooth not in ("exp", "none"):
        raise ValueError(f"smooth must be 'exp' or 'none', got {smooth!r}")
    check_positive_int("max_n", max_n)
    _check_corpus(hypotheses, references)
    refs = [_reference_list(r) for r in references]
    c = sum(len(h) for h in hypotheses)
    r = sum(_closest_length(len(h), rs) for h, rs in zip(hypotheses, refs))
    counts = [modified_precision(hypotheses, references, n) for n in range(1, max_n + 1)]
    if not any(m for m, _ in counts) or not all(t for _, t in counts):
        return 0.0
    log_p, zeros = [], 0
    for matches, total in counts:
        if matches == 0:
            if smooth == "none":
                return 0.0
            zeros += 1
            log_p.append(-math.log(2 ** zeros * total))  # smoothed p_n = 1 / (2^k total)
        else:
            log_p.append(math.log(matches / total))
    return 100.0 * brevity_penalty(c, r) * math.exp(sum(log_p) / max_n)

"""How well a model does: accuracy, span F1, perplexity, and the edit distance of transcriptions.

- ``accuracy(scores, targets, mask)``: the fraction of labelled steps (or examples) predicted
  right, the steps labelled ``IGNORE_INDEX`` (padding, unlabelled steps) left out.
- ``span_scores(gold, pred)``: exact-match span precision, recall and F1 of BIO, BIOES or IO tags
  (``seqmem.tagging`` reads the spans), as CoNLL's evaluation script ``conlleval`` counts them.
- ``perplexity(model, ids)`` and ``bits_per_char(model, ids)``: how surprised a recurrent
  language model is by a held-out text, read in chunks with the state carried through; a model
  that knows nothing (uniform over V tokens) has perplexity V, log2(V) bits per character.
- ``edit_distance`` and ``label_error_rate``: of transcriptions against references (CTC, chapter 3).

``span_scores`` counts a predicted span correct only if a gold span has the same type,
start and end (CoNLL's exact match): precision = correct / predicted, recall = correct / gold,
F1 = 2PR / (P + R), each 0 when its denominator is 0 (as ``conlleval`` reports them).

Dimensions: B batch, T time, C classes, N tokens of a text.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .core import IGNORE_INDEX
from .tagging import spans_from_tags

__all__ = ["accuracy", "Scores", "span_scores", "perplexity", "bits_per_char", "perplexity_of",
           "edit_distance", "label_error_rate"]


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

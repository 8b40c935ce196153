"""Generated documents whose topic hangs on one sentence: a task for hierarchical attention (chapter 5).

Yang et al. (2016) classify documents (reviews, questions by topic) with attention at two levels:
the words that matter in each sentence, then the sentences that matter in the document. Here
every document is a few sentences of neutral filler words ("the", "people", "said", ...), and
exactly one of them, the **cue sentence**, also holds one **cue word** of a topic among its
fillers: "we talked about it after the **goal** yesterday". The document's label is that topic
(``DOC_TOPICS``: sports, food, music, weather). So a classifier must find one word of one
sentence, and a model that attends should put its sentence-level weight on the cue sentence and
its word-level weight, in that sentence, on the cue word; ``cue_documents`` returns both
positions, so that the attention can be measured.

A document has ``sentences`` = (fewest, most) sentences and each sentence ``words`` = (fewest,
most) words, drawn uniformly; the cue sentence is any of them with equal chance, the cue word any
position of it, the topic any of the four. Draws: one 62-bit integer per document from the
``torch.Generator`` seeds a Python ``random.Random`` for its words, as ``seqmem.tasks.babi`` does,
so a seed fixes every document.

Dimensions: B documents, N sentences, L words per sentence.
"""
from __future__ import annotations

import random
from typing import NamedTuple

import torch

from ..text import Vocab
from ._common import check_sizes, gen_device

__all__ = ["DOC_TOPICS", "DOC_LABELS", "DOC_FILLER", "Documents", "document_vocab", "cue_documents", "document_text"]

#: The topics, in label order, and their cue words.
DOC_TOPICS = {
    "sports": ("goal", "match", "team", "coach", "league", "referee"),
    "food": ("soup", "bread", "recipe", "dinner", "cheese", "kitchen"),
    "music": ("guitar", "song", "concert", "band", "piano", "album"),
    "weather": ("rain", "storm", "snow", "sunshine", "wind", "forecast"),
}
#: The labels: the topics, then "none" for a document without a cue.
DOC_LABELS = (*DOC_TOPICS, "none")
#: Neutral words: they fill every sentence and say nothing of the topic.
DOC_FILLER = ("the", "a", "we", "they", "it", "was", "were", "said", "about", "after", "before", "then",
              "people", "yesterday", "today", "some", "many", "there", "here", "thought", "talked", "again",
              "one", "other", "time", "day", "week", "really", "so", "and")
_PAD = "<pad>"


class Documents(NamedTuple):
    """B documents, as a hierarchical model reads them.

    ``ids`` (B, N, L): word ids, each sentence from position 0 and each document's sentences from
    slot 0, padded with id 0; ``lengths`` (B, N): the words of each sentence (0 for a padded
    sentence); ``labels`` (B,): the topic (an index into ``DOC_LABELS``); ``cue`` (B,): the index
    of the cue sentence; ``cue_word`` (B,): the position of the cue word in it (both -1 for a
    document without a cue, labelled "none").
    """

    ids: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    cue: torch.Tensor
    cue_word: torch.Tensor


def document_vocab() -> Vocab:
    """The closed vocabulary of the task: "<pad>" at id 0, the fillers, then every topic's cue words."""
    return Vocab([_PAD, *DOC_FILLER, *(w for words in DOC_TOPICS.values() for w in words)], other=None)


def _document(rng: random.Random, sentences: tuple[int, int], words: tuple[int, int], p_none: float):
    """One document: its sentences (lists of words), label, cue sentence and cue word position."""
    n = rng.randint(*sentences)
    doc = [[rng.choice(DOC_FILLER) for _ in range(rng.randint(*words))] for _ in range(n)]
    if rng.random() < p_none:
        return doc, len(DOC_TOPICS), -1, -1
    label, cue = rng.randrange(len(DOC_TOPICS)), rng.randrange(n)
    position = rng.randrange(len(doc[cue]))
    doc[cue][position] = rng.choice(list(DOC_TOPICS.values())[label])
    return doc, label, cue, position


def _check_range(name: str, value) -> tuple[int, int]:
    if not (isinstance(value, tuple) and len(value) == 2):
        raise ValueError(f"{name} must be a pair (fewest, most) of positive ints, got {value!r}")
    check_sizes(**{f"{name}[0]": value[0], f"{name}[1]": value[1]})
    if value[0] > value[1]:
        raise ValueError(f"{name} must be (fewest, most) with fewest <= most, got {value!r}")
    return value


def cue_documents(n: int, sentences: tuple[int, int] = (3, 6), words: tuple[int, int] = (4, 8),
                  p_none: float = 0.2, generator: torch.Generator | None = None, device=None) -> Documents:
    """``n`` documents of ``sentences`` sentences of ``words`` words, with one cue sentence each but
    a fraction ``p_none`` without (label "none").

    Returns ``Documents``, N and L the most sentences and words of the batch, on ``device``.
    """
    check_sizes(n=n)
    sentences, words = _check_range("sentences", sentences), _check_range("words", words)
    if isinstance(p_none, bool) or not isinstance(p_none, (int, float)) or not 0 <= p_none < 1:
        raise ValueError(f"p_none must be a probability in [0, 1), got {p_none!r}")
    vocab = document_vocab()
    draws = torch.randint(2 ** 62, (n,), generator=generator, device=gen_device(generator)).tolist()
    docs = [_document(random.Random(d), sentences, words, p_none) for d in draws]
    N = max(len(doc) for doc, *_ in docs)
    L = max(len(s) for doc, *_ in docs for s in doc)
    ids = torch.zeros(n, N, L, dtype=torch.long)  # (B, N, L)
    lengths = torch.zeros(n, N, dtype=torch.long)  # (B, N)
    for b, (doc, *_) in enumerate(docs):
        for i, sentence in enumerate(doc):
            ids[b, i, : len(sentence)] = vocab.encode(sentence)
            lengths[b, i] = len(sentence)
    labels, cue, cue_word = (torch.tensor([d[k] for d in docs]) for k in (1, 2, 3))
    return Documents(*(t.to(device) for t in (ids, lengths, labels, cue, cue_word)))


def document_text(docs: Documents, b: int, vocab: Vocab | None = None) -> list[list[str]]:
    """Document ``b`` of ``docs`` as its sentences, lists of words (the padding left out)."""
    vocab = vocab or document_vocab()
    return [vocab.decode(docs.ids[b, i, :J]) for i, J in enumerate(docs.lengths[b].tolist()) if J > 0]

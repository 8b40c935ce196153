"""seqmem.tasks.documents (chapter 5): documents whose topic hangs on one cue sentence.

Pinned here: shapes and padding; exactly one cue word per document with a cue, in the cue
sentence at the cue position, of the label's topic, and fillers everywhere else; "none" documents
hold no cue word; the labels' and cue positions' spread; seeds; devices; errors.
"""
import collections

import pytest
import torch

from helpers import gen
from seqmem.tasks import documents
from seqmem.tasks.documents import DOC_FILLER, DOC_LABELS, DOC_TOPICS, cue_documents, document_text, document_vocab


def test_vocab():
    vocab = document_vocab()
    assert vocab.tokens[0] == "<pad>" and len(vocab) == 1 + len(DOC_FILLER) + sum(map(len, DOC_TOPICS.values()))
    assert DOC_LABELS == ("sports", "food", "music", "weather", "none")


def test_documents_hold_one_cue_each():
    docs = cue_documents(500, sentences=(2, 5), words=(3, 6), generator=gen(0))
    B, N, L = docs.ids.shape
    assert (N, L) == (5, 6) and docs.lengths.shape == (B, N) and docs.labels.shape == docs.cue.shape == (B,)
    topic_of = {w: k for k, words in enumerate(DOC_TOPICS.values()) for w in words}
    for b in range(B):
        text = document_text(docs, b)
        assert 2 <= len(text) <= 5 and all(3 <= len(s) <= 6 for s in text)
        cues = [(i, j, topic_of[w]) for i, s in enumerate(text) for j, w in enumerate(s) if w in topic_of]
        if docs.labels[b] == len(DOC_TOPICS):
            assert cues == [] and docs.cue[b] == -1 and docs.cue_word[b] == -1
        else:
            assert cues == [(int(docs.cue[b]), int(docs.cue_word[b]), int(docs.labels[b]))]
        assert all(w in DOC_FILLER for s in text for w in s if w not in topic_of)
    real = torch.arange(L) < docs.lengths[..., None]
    assert torch.all(docs.ids[~real] == 0) and torch.all(docs.ids[real] > 0)
    n = (docs.lengths > 0).sum(1)
    assert torch.equal(docs.lengths > 0, torch.arange(N) < n[:, None])  # real sentences first


def test_spread():
    docs = cue_documents(4000, generator=gen(1))
    counts = collections.Counter(docs.labels.tolist())
    assert abs(counts[4] / 4000 - 0.2) < 0.03 and all(abs(counts[k] / 4000 - 0.2) < 0.03 for k in range(4))
    cued = docs.cue >= 0
    n = (docs.lengths > 0).sum(1)
    last = (docs.cue == n - 1)[cued].float().mean()  # the cue is any sentence: last with mean chance 1 / n
    assert abs(last - (1 / n[cued].float()).mean()) < 0.03
    assert cue_documents(100, p_none=0.0, generator=gen(2)).cue.min() >= 0


def test_seeds_and_devices(dev):
    a = cue_documents(50, generator=gen(3))
    b = cue_documents(50, generator=gen(3), device=dev)
    assert b.ids.device.type == dev.type
    for x, y in zip(a, b):
        assert torch.equal(x, y.cpu())
    assert not torch.equal(a.ids, cue_documents(50, generator=gen(4)).ids)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be a positive int"),
    (dict(n=5, sentences=(3,)), r"sentences must be a pair"),
    (dict(n=5, sentences=(4, 2)), "fewest <= most"),
    (dict(n=5, words=(0, 2)), r"words\[0\] must be a positive int"),
    (dict(n=5, p_none=1.0), r"p_none must be a probability in \[0, 1\)"),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        documents.cue_documents(**kwargs)

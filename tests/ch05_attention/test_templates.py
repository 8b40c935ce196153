"""seqmem.tasks.templates (chapter 5): template sentences whose test names are never seen in training.

Pinned here: the two name pools are fixed, distinct, disjoint and of the stated sizes; the
vocabulary holds the template words and the first VOCAB_NAMES training names only, so every test
name is out of it; a seed fixes the draws; each pair is a template filled with the same names on
both sides; and the encoded batch's shapes and extended ids (a test target's names >= V).
"""
import pytest
import torch

from helpers import gen
from seqmem import tasks
from seqmem.copy import UNK_ID, decode_extended
from seqmem.tasks.templates import NAME_POOLS, TEMPLATES, VOCAB_NAMES
from seqmem.text import EOS_ID


def test_pools_are_fixed_distinct_and_disjoint():
    train, test = tasks.name_pool("train"), tasks.name_pool("test")
    assert len(train) == NAME_POOLS["train"] == 500 and len(test) == NAME_POOLS["test"] == 200
    assert len(set(train) | set(test)) == 700  # distinct within and across the pools
    assert all(n[0].isupper() and n[1:].islower() and 4 <= len(n) <= 6 for n in train + test)  # 2-3 syllables
    assert tasks.name_pool("train") == train and tasks.name_pool("test") == test
    with pytest.raises(ValueError, match="'train' or 'test'"):
        tasks.name_pool("valid")


def test_the_vocabulary_holds_no_test_name():
    vocab, train = tasks.template_vocab(), tasks.name_pool("train")
    assert vocab.tokens[UNK_ID] == "<unk>"
    assert all(n in vocab for n in train[:VOCAB_NAMES]) and not any(n in vocab for n in train[VOCAB_NAMES:])
    assert not any(n in vocab for n in tasks.name_pool("test"))
    words = {w for pair in TEMPLATES for side in pair for w in side.split() if "{" not in w}
    assert len(vocab) == 4 + len(words) + VOCAB_NAMES and all(w in vocab for w in words)


def test_a_seed_fixes_the_draws():
    a = tasks.template_sentences(50, "train", gen(3))
    assert a == tasks.template_sentences(50, "train", gen(3)) and a != tasks.template_sentences(50, "train", gen(4))


@pytest.mark.parametrize("split", ["train", "test"])
def test_pairs_are_templates_filled_with_the_split_names(split):
    pool, seen = set(tasks.name_pool(split)), set()
    for source, target in tasks.template_sentences(400, split, gen(0)):
        names = [w for w in source if w in pool]
        assert 1 <= len(names) <= 2 and len(set(names)) == len(names)  # two different names
        a, b = names[0], names[-1]
        match = [i for i, (s, t) in enumerate(TEMPLATES)
                 if s.replace("{a}", a).replace("{b}", b).split() == source
                 and t.replace("{a}", a).replace("{b}", b).split() == target]
        assert match
        seen.add(match[0])
    assert seen == set(range(len(TEMPLATES)))


def test_encoded_batch_shapes_and_extended_ids():
    vocab, V = tasks.template_vocab(), len(tasks.template_vocab())
    batch = tasks.template_pairs(64, "test", gen(1))
    B, S = batch.source.ids.shape
    assert B == 64 and batch.target.ids.shape[0] == 64 and len(batch.oovs) == 64
    assert S == int(batch.source.lengths.max()) and batch.source.ids.dtype == torch.long
    for b in range(B):
        n = int(batch.target.lengths[b])
        target = batch.target.ids[b, :n].tolist()
        assert target[-1] == EOS_ID and UNK_ID not in target
        assert 1 <= len(batch.oovs[b]) <= 2 and max(target) >= V  # every test name is copied, never generated
        assert " ".join(decode_extended(target[:-1], vocab, batch.oovs[b])) == batch.target_text[b]
        m = int(batch.source.lengths[b])
        assert " ".join(decode_extended(batch.source.ids[b, :m], vocab, batch.oovs[b])) == batch.source_text[b]
    with pytest.raises(ValueError, match="batch_size"):
        tasks.template_pairs(0)

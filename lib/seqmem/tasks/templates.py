"""Template sentences with names never seen in training: a task that needs copying (chapter 5).

Each pair fills one of ``TEMPLATES`` with one or two names, the same names on both sides:
"please call Kalemo tomorrow" -> "call Kalemo", "tell Rubi that Sotena called" -> "Sotena called
Rubi". The template words are few and always the same; the names are made-up strings of two or
three syllables (consonant + vowel: "Kalemo", "Rubi"), drawn from two fixed, disjoint pools
(``name_pool``): 500 names for training and 200 for testing. So every test sentence holds a
name that no training sentence held.

The vocabulary (``template_vocab``, a ``seqmem.copy.copy_vocab``: PAD, BOS, EOS, ``<unk>``, ...)
holds the template words and the first ``VOCAB_NAMES`` training names, the "frequent" ones; every
other name is out of it, as rare words are out of a real system's vocabulary. A decoder with a
softmax over this vocabulary can write the 100 names it holds, and nothing else: a test name
comes out as ``<unk>`` at best. A decoder that copies from the source can write any of them.

The pools are cut once from a fixed seed that no caller's generator touches: the same names on
every call and machine; the draws of ``template_sentences`` come from the generator given.

Dimensions: B batch, S source length, T target length.
"""
from __future__ import annotations

import functools

import torch

from ..copy import CopyPairs, copy_vocab, encode_copy_pairs
from ..text import Vocab
from ._common import check_sizes, gen_device, randint

__all__ = ["TEMPLATES", "NAME_POOLS", "VOCAB_NAMES", "name_pool", "template_vocab", "template_sentences",
           "template_pairs"]

#: (source, target) templates; {a} and {b} are two different names, the same on both sides.
TEMPLATES = (
    ("please call {a} tomorrow", "call {a}"),
    ("my name is {a}", "hello {a}"),
    ("this is {a} speaking", "hello {a}"),
    ("could you email {a} about the meeting", "email {a}"),
    ("remind {a} to buy milk", "remind {a} milk"),
    ("say goodbye to {a} for me", "goodbye {a}"),
    ("{a} will meet {b} on friday", "meeting {a} {b}"),
    ("tell {a} that {b} called", "{b} called {a}"),
    ("i met {a} and {b} today", "met {a} {b}"),
    ("ask {a} to call {b}", "call {b} for {a}"),
)
#: How many names each split draws from; the pools are disjoint.
NAME_POOLS = {"train": 500, "test": 200}
#: The training names that the vocabulary holds (the first of the training pool).
VOCAB_NAMES = 100
_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


@functools.lru_cache(maxsize=None)
def _names() -> tuple[str, ...]:
    """Every name of both pools, distinct, in a fixed order: training names first."""
    g = torch.Generator().manual_seed(0)  # fixed: no caller's generator is drawn from
    names: dict[str, None] = {}
    while len(names) < sum(NAME_POOLS.values()):
        syllables = 2 + randint(2, g)  # 2 or 3
        name = "".join(_CONSONANTS[randint(len(_CONSONANTS), g)] + _VOWELS[randint(len(_VOWELS), g)]
                       for _ in range(syllables))
        names[name.capitalize()] = None  # capitalised: never one of the template words
    return tuple(names)


def name_pool(split: str = "train") -> tuple[str, ...]:
    """The names of one split: 500 for ``"train"``, 200 for ``"test"``, none shared."""
    if split not in NAME_POOLS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = _names()
    return names[:NAME_POOLS["train"]] if split == "train" else names[NAME_POOLS["train"]:]


def _template_words() -> list[str]:
    words = {w for pair in TEMPLATES for side in pair for w in side.split() if w not in ("{a}", "{b}")}
    return sorted(words)


@functools.lru_cache(maxsize=None)
def template_vocab() -> Vocab:
    """The fixed vocabulary: PAD 0, BOS 1, EOS 2, ``<unk>`` 3, the template words (sorted), then the
    first ``VOCAB_NAMES`` training names."""
    return copy_vocab(_template_words() + list(name_pool("train")[:VOCAB_NAMES]))


def template_sentences(batch_size: int, split: str = "train",
                       generator: torch.Generator | None = None) -> list[tuple[list[str], list[str]]]:
    """B (source tokens, target tokens) pairs: a uniform template, names uniform from the split's pool
    (two different names for a template with two)."""
    check_sizes(batch_size=batch_size)
    pool, pairs = name_pool(split), []
    for _ in range(batch_size):
        source, target = TEMPLATES[randint(len(TEMPLATES), generator)]
        a = pool[randint(len(pool), generator)]
        b = a
        while b == a:
            b = pool[randint(len(pool), generator)]
        fill = lambda text: [a if w == "{a}" else b if w == "{b}" else w for w in text.split()]
        pairs.append((fill(source), fill(target)))
    return pairs


def template_pairs(batch_size: int, split: str = "train", generator: torch.Generator | None = None,
                   device=None) -> CopyPairs:
    """B template pairs encoded over ``template_vocab``'s extended vocabulary: a ``CopyPairs``
    (source (B, S) and target (B, T) extended ids, the target ending with ``<eos>``, and each
    example's OOV names)."""
    pairs = template_sentences(batch_size, split, generator)
    return encode_copy_pairs(pairs, template_vocab(), device or gen_device(generator))

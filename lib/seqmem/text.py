"""Turning words into vectors: the input encodings of the lecture.

An RNN reads vectors, so each word (or character) of a sentence must become one. The lecture
(Seed 003, pages 3-5) names three ways:

- **One-hot encoding.** The vector is as long as the lexicon; the word's dimension is 1, the others
  are 0. With lexicon = {apple, bag, cat, dog, elephant}, "apple" is (1, 0, 0, 0, 0). A word outside
  the lexicon ("Sauron", "Gandalf") gets the extra dimension "other". ``Vocab`` maps tokens to ids
  (with that "other" entry) and ``one_hot`` turns ids into vectors.
- **Word hashing.** The vector has one dimension per letter trigram (26 x 26 x 26 of them) plus
  "other"; a word sets the dimensions of its trigrams: "apple" sets a-p-p, p-p-l and p-l-e. Far
  fewer dimensions than a large lexicon, and an unseen word still gets a vector of its parts.
  ``letter_trigrams`` cuts a word, ``TrigramHasher`` builds the multi-hot vector.
- **Word embedding.** A learned vector per id: that is ``torch.nn.Embedding(V, E)``, which equals
  ``one_hot(ids, V) @ W`` for its weight W (V, E) but skips the multiplication by zeros. The
  library uses it as it is (``seqmem.lm.CharRNNLM`` does) and does not wrap it.

Sentences differ in length; a batch holds them side by side. ``pad`` puts B sequences of ids in
one (B, T) tensor, T the longest, with their lengths and the mask of the real (unpadded) steps.

Sequence to sequence (chapter 4) pairs a source with a target. ``seq2seq_vocab`` reserves the
decoder's special tokens (PAD id 0, BOS id 1, EOS id 2); ``encode_pairs`` pads a batch of pairs
into ``Pairs`` (the target ending with EOS), and ``strip_special`` cuts a decoder's output at its
first EOS.

Dimensions: B batch, T tokens (time; the target's length in a pair), S the source's length, N words,
V vocabulary size, F hashed features.
"""
from __future__ import annotations

import itertools
import string
from typing import Iterable, NamedTuple, Sequence

import torch
from torch.nn import functional as F

from .core import check_positive_int

__all__ = ["one_hot", "Vocab", "letter_trigrams", "TrigramHasher", "OTHER", "Padded", "pad",
           "PAD", "BOS", "EOS", "PAD_ID", "BOS_ID", "EOS_ID", "seq2seq_vocab", "Pairs", "encode_pairs",
           "strip_special"]

#: The name of the lecture's "other" entry, for tokens outside the vocabulary.
OTHER = "<other>"


def one_hot(indices: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot vectors of ``indices``: a 1 in the index's dimension, 0 elsewhere.

    A thin layer over ``torch.nn.functional.one_hot`` that checks its input and returns floats, the
    dtype an RNN reads (torch's returns int64).

    Args:
        indices: integer tensor of any shape (...), every entry in [0, num_classes).
        num_classes: V, the length of each vector.

    Returns:
        (..., V) tensor of ``dtype`` on the device of ``indices``.
    """
    check_positive_int("num_classes", num_classes)
    if not isinstance(indices, torch.Tensor) or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        got = indices.dtype if isinstance(indices, torch.Tensor) else type(indices).__name__
        raise ValueError(f"indices must be an integer tensor, got {got}")
    if indices.numel() and (indices.min() < 0 or indices.max() >= num_classes):
        raise ValueError(f"indices must lie in [0, {num_classes}), got values from "
                         f"{indices.min().item()} to {indices.max().item()}")
    return F.one_hot(indices.long(), num_classes).to(dtype)  # (..., V)


class Vocab:
    """A lexicon: tokens <-> ids, with the lecture's "other" dimension for unknown tokens.

    Tokens keep the order given (duplicates dropped), so the lecture's lexicon
    ``Vocab(["apple", "bag", "cat", "dog", "elephant"])`` gives apple id 0, ..., elephant id 4, and
    "other" comes last (id 5), as on the slide. ``other=None`` makes a closed vocabulary, in which an
    unknown token raises a ``KeyError`` instead (a character vocabulary built from the very text it
    encodes needs no "other").

    Tokens are any hashable values: words, characters.
    """

    def __init__(self, tokens: Iterable, other: str | None = OTHER):
        self.tokens: list = list(dict.fromkeys(tokens))  # id -> token, first occurrence wins
        if other is not None:
            if other in self.tokens:
                raise ValueError(f"the 'other' token {other!r} is also one of the tokens; pick another name")
            self.tokens.append(other)
        self.other = other
        self._ids = {tok: i for i, tok in enumerate(self.tokens)}  # token -> id

    @classmethod
    def from_text(cls, text: str, other: str | None = None) -> "Vocab":
        """A character vocabulary: the distinct characters of ``text``, sorted; closed by default."""
        return cls(sorted(set(text)), other=other)

    @property
    def other_id(self) -> int | None:
        """The id of "other" (the last one), or ``None`` in a closed vocabulary."""
        return None if self.other is None else len(self.tokens) - 1

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token) -> bool:
        return token in self._ids and token != self.other

    def index(self, token) -> int:
        """The id of ``token``; "other"'s id for an unknown token (a ``KeyError`` if closed)."""
        i = self._ids.get(token, self.other_id)
        if i is None:
            raise KeyError(f"{token!r} is not in this closed vocabulary of {len(self)} tokens")
        return i

    def encode(self, tokens: Iterable) -> torch.Tensor:
        """Ids of a sequence of tokens (a string is a sequence of characters): int64 (T,)."""
        return torch.tensor([self.index(t) for t in tokens], dtype=torch.long)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> list:
        """The tokens of ids (T,); ``"".join(vocab.decode(ids))`` rebuilds a character string."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        for i in ids:
            if not 0 <= i < len(self):
                raise ValueError(f"ids must lie in [0, {len(self)}), got {i}")
        return [self.tokens[i] for i in ids]

    def one_hot(self, tokens: Iterable) -> torch.Tensor:
        """The lecture's one-hot encoding of a token sequence: (T, V) floats."""
        return one_hot(self.encode(tokens), len(self))

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.tokens[:5])
        return f"Vocab({len(self)} tokens: {head}{', ...' if len(self) > 5 else ''})"


def letter_trigrams(word: str, boundary: str | None = "#") -> list[str]:
    """The letter trigrams of ``word``, in order, repeats kept.

    With word-boundary markers (the default) the word is read as ``#word#``, so that the first and
    the last letters get trigrams of their own and "app" at the start differs from "app" inside:
    ``letter_trigrams("apple") == ["#ap", "app", "ppl", "ple", "le#"]``. ``boundary=None`` gives the
    lecture's plain trigrams, ``["app", "ppl", "ple"]``, and none for a word shorter than 3 letters.
    The word's case is kept; ``TrigramHasher`` lowercases.
    """
    if not isinstance(word, str) or not word:
        raise ValueError(f"word must be a non-empty string, got {word!r}")
    if boundary is not None:
        if len(boundary) != 1:
            raise ValueError(f"boundary must be one character or None, got {boundary!r}")
        word = boundary + word + boundary
    return [word[i : i + 3] for i in range(len(word) - 2)]


def _all_trigrams(alphabet: str, boundary: str | None) -> list[str]:
    # Every trigram that letter_trigrams can return for a word over the alphabet: 26^3 inside
    # trigrams, and with markers also 26^2 "#ab", 26^2 "ab#" and 26 "#a#": 18,954 for a-z.
    grams = ["".join(p) for p in itertools.product(alphabet, repeat=3)]
    if boundary is not None:
        b = boundary
        grams += [b + x + y for x in alphabet for y in alphabet]
        grams += [x + y + b for x in alphabet for y in alphabet]
        grams += [b + x + b for x in alphabet]
    return grams


class TrigramHasher:
    """Word hashing: a word becomes a multi-hot vector over letter trigrams, plus "other".

    Dimension j < F - 1 is 1 when the (lowercased) word contains trigram j; the last dimension,
    "other", is 1 when the word has a trigram outside the inventory (a digit, an apostrophe, or a
    trigram never seen). ``counts=True`` gives how often each trigram occurs instead of 0/1.

    The inventory of trigrams is a choice:

    - ``TrigramHasher()``: every trigram over the letters a-z, as on the slide (26 x 26 x 26 + 1
      dimensions with ``boundary=None``; with the default markers also the 26^2 + 26^2 + 26 boundary
      trigrams, 18,954 + 1 in all). Fixed in advance: no data needed, no word is ever wholly
      "other", but most dimensions never fire ("qxz").
    - ``TrigramHasher.from_words(words)``: the trigrams that occur in a word list, sorted; a few
      thousand dimensions for an English lexicon, learned from data, and unseen trigrams go to
      "other".
    - ``TrigramHasher(inventory=[...])``: any explicit list.

    Shape:
        ``hasher(word)`` is (F,); ``hasher.encode(words)`` is (N, F), F = ``hasher.dim``.
    """

    def __init__(self, inventory: Iterable[str] | None = None, boundary: str | None = "#",
                 counts: bool = False):
        if inventory is None:
            inventory = _all_trigrams(string.ascii_lowercase, boundary)
        self.trigrams: list[str] = list(dict.fromkeys(inventory))  # feature id -> trigram
        bad = [g for g in self.trigrams if not isinstance(g, str) or len(g) != 3]
        if bad:
            raise ValueError(f"the inventory must hold 3-character strings, got {bad[:3]!r}")
        self.boundary, self.counts = boundary, counts
        self._ids = {g: i for i, g in enumerate(self.trigrams)}  # trigram -> feature id

    @classmethod
    def from_words(cls, words: Iterable[str], boundary: str | None = "#", counts: bool = False):
        """A hasher whose inventory is the trigrams seen in ``words`` (lowercased), sorted."""
        seen = {g for w in words for g in letter_trigrams(w.lower(), boundary)}
        return cls(sorted(seen), boundary=boundary, counts=counts)

    @property
    def dim(self) -> int:
        """F: one dimension per trigram of the inventory, plus "other"."""
        return len(self.trigrams) + 1

    @property
    def other_id(self) -> int:
        return len(self.trigrams)

    def features(self, word: str) -> list[int]:
        """The feature ids of ``word``'s trigrams, in order, repeats kept ("other" for unknown ones)."""
        return [self._ids.get(g, self.other_id) for g in letter_trigrams(word.lower(), self.boundary)]

    def __call__(self, word: str) -> torch.Tensor:
        """The multi-hot vector of one word: (F,)."""
        return self.encode([word])[0]

    def encode(self, words: Sequence[str]) -> torch.Tensor:
        """The multi-hot vectors of N words: (N, F) floats."""
        if isinstance(words, str):
            raise ValueError("encode takes a list of words; call the hasher itself on a single word")
        x = torch.zeros(len(words), self.dim)  # (N, F)
        for n, word in enumerate(words):
            ids = torch.tensor(self.features(word), dtype=torch.long)
            # index_put_ with accumulate counts repeats ("ana" twice in "banana")
            x[n].index_put_((ids,), torch.ones(len(ids)), accumulate=True)
        return x if self.counts else (x > 0).float()

    def __repr__(self) -> str:
        return f"TrigramHasher(dim={self.dim}, boundary={self.boundary!r}, counts={self.counts})"


class Padded(NamedTuple):
    """A batch of sequences of different lengths: ids (B, T) padded at the end, lengths (B,), mask (B, T)."""

    ids: torch.Tensor
    lengths: torch.Tensor
    mask: torch.Tensor  # True at the real steps, False at the padding


def pad(sequences: Sequence, padding_value: int = 0, device=None) -> Padded:
    """Put B sequences of ids side by side, each padded at its end to the longest length T.

    Args:
        sequences: B sequences of ints (1-D int64 tensors, or lists), for instance ``vocab.encode``'s.
        padding_value: the id of the padding; for labels, ``seqmem.IGNORE_INDEX`` keeps the padded
            steps out of the loss and the accuracy.

    Returns:
        ``Padded(ids, lengths, mask)``: ids (B, T) int64, lengths (B,) int64, mask (B, T) bool,
        ``mask[b, t]`` True for t < lengths[b]; all on ``device``.
    """
    rows = [torch.as_tensor(s, dtype=torch.long) for s in sequences]
    if not rows or any(r.dim() != 1 for r in rows):
        raise ValueError(f"pad expects a non-empty list of 1-D sequences of ids, got {len(rows)} sequences")
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=padding_value)  # (B, T)
    mask = torch.arange(ids.shape[1]) < lengths[:, None]  # (B, T)
    return Padded(ids.to(device), lengths.to(device), mask.to(device))


# ----------------------------------------------------------------------------------------------
# Sequence to sequence (chapter 4): pairs of token sequences, with the decoder's special tokens

#: The special tokens of a sequence-to-sequence vocabulary: padding, begin and end of sequence.
PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
#: Their ids in every ``seq2seq_vocab``: the first three, in this order.
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
_SPECIALS = [PAD, BOS, EOS]


def seq2seq_vocab(tokens: Iterable) -> Vocab:
    """A closed vocabulary for an encoder or a decoder: PAD (id 0), BOS (1), EOS (2), then ``tokens``.

    Closed (no "other"): every task of chapter 4 knows its tokens in advance, so an unknown token
    is a bug and raises a ``KeyError`` when encoded.
    """
    tokens = list(tokens)
    clash = [t for t in tokens if t in _SPECIALS]
    if clash:
        raise ValueError(f"tokens must not include the special tokens {_SPECIALS}, got {clash[:3]!r}")
    return Vocab([*_SPECIALS, *tokens], other=None)


def _check_seq2seq_vocab(name: str, vocab) -> None:
    if not isinstance(vocab, Vocab) or vocab.tokens[:3] != _SPECIALS:
        got = vocab.tokens[:3] if isinstance(vocab, Vocab) else type(vocab).__name__
        raise ValueError(f"{name} must be a seq2seq_vocab (first tokens {_SPECIALS}), got {got!r}")


class Pairs(NamedTuple):
    """A batch of B source-target pairs, encoded and padded with ``PAD_ID`` (0).

    ``source`` (B, S) holds the source tokens only; ``target`` (B, T) the target tokens and then
    EOS, so that a decoder learns to stop. Neither starts with BOS: a decoder prepends it to its
    own input (teacher forcing shifts the target right by one step). The texts are the pairs as
    strings, for display and for the metrics.
    """

    source: Padded
    target: Padded
    source_text: list[str]
    target_text: list[str]


def encode_pairs(pairs: Sequence[tuple[Sequence, Sequence]], source_vocab: Vocab, target_vocab: Vocab,
                 source_text: list[str] | None = None, target_text: list[str] | None = None,
                 device=None) -> Pairs:
    """Encode B (source tokens, target tokens) pairs into a ``Pairs`` batch.

    The source gets nothing appended (its length says where it ends); the target gets EOS. Both
    vocabularies must be ``seq2seq_vocab``s, so that id 0 is the padding of either.

    Args:
        pairs: B pairs of token sequences (a string is a sequence of characters).
        source_text, target_text: the B strings shown for each side; by default the tokens joined
            with spaces.

    Returns:
        ``Pairs``: source ids (B, S), target ids (B, T) with T - 1 the longest target, on ``device``.
    """
    _check_seq2seq_vocab("source_vocab", source_vocab)
    _check_seq2seq_vocab("target_vocab", target_vocab)
    pairs = list(pairs)
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"pairs must be a non-empty list of (source, target) pairs, got {len(pairs)} items")
    sources = [source_vocab.encode(s) for s, _ in pairs]  # B of (S_b,)
    targets = [torch.cat([target_vocab.encode(t), torch.tensor([EOS_ID])]) for _, t in pairs]  # B of (T_b,)
    source_text = [" ".join(map(str, s)) for s, _ in pairs] if source_text is None else list(source_text)
    target_text = [" ".join(map(str, t)) for _, t in pairs] if target_text is None else list(target_text)
    if len(source_text) != len(pairs) or len(target_text) != len(pairs):
        raise ValueError(f"need one text per pair ({len(pairs)}), got {len(source_text)} source and "
                         f"{len(target_text)} target texts")
    return Pairs(pad(sources, PAD_ID, device), pad(targets, PAD_ID, device), source_text, target_text)


def strip_special(ids: torch.Tensor | Sequence[int]) -> list[int]:
    """The token ids of one decoded sequence (T,): cut at the first EOS, PAD and BOS dropped.

    A decoder writes up to a maximum length and may go on after EOS; what counts is what comes
    before it. ``vocab.decode(strip_special(ids))`` gives the tokens.
    """
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    if any(isinstance(i, list) for i in ids):
        raise ValueError(f"strip_special takes one sequence of ids (T,), got nested lists of length {len(ids)}")
    if EOS_ID in ids:
        ids = ids[: ids.index(EOS_ID)]
    return [i for i in ids if i not in (PAD_ID, BOS_ID)]

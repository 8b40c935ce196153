"""Strips of handwritten digits, for CTC (chapter 3), and captions of digit images (chapter 4).

Seed 002, "Many to many (output is shorter)": speech recognition, read here as handwriting.
``digit_strips`` puts scikit-learn's 8 x 8 handwritten digits side by side with random gaps; a
recogniser reads the strip one pixel column at a time and must output the digit string, which is
far shorter than the column sequence: the task of CTC. Train and test strips are built from
disjoint sets of digit images (``digit_images``).

``digit_captions`` (chapter 4, "One to many") puts digits side by side without gaps and captions the
image with the digits' English words, "three one four", as a target for a decoder.

Dimensions: B batch, T time (pixel columns; a caption's tokens in ``digit_captions``), R = 8 rows of
a digit image, W image width, L label length.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from ..text import Padded, Vocab, encode_pairs, seq2seq_vocab
from ._common import check_sizes, gen_device

__all__ = ["digit_images", "digit_strips", "Captions", "caption_vocab", "digit_captions"]


@functools.lru_cache(maxsize=None)
def _digits():
    """scikit-learn's 1,797 8 x 8 digits (ship with the package), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.tensor(d.images, dtype=torch.float32) / 16.0  # (N, 8, 8), ink 0 ... 16
    return images, torch.tensor(d.target, dtype=torch.long)


def digit_images(split: str = "train", test_fraction: float = 0.25):
    """scikit-learn's 8 x 8 digit images, cut once into disjoint train and test parts.

    The cut is a fixed permutation (seed 0), the same on every call and every machine, so test
    strips are built from images that no training strip contains.

    Returns:
        images: (N, 8, 8) floats in [0, 1] (0 is paper, 1 full ink); labels: (N,) int64 digits.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    images, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    n_test = int(round(test_fraction * len(labels)))
    idx = order[:n_test] if split == "test" else order[n_test:]
    return images[idx], labels[idx]


def digit_strips(batch_size: int, n_digits: tuple[int, int] = (3, 5), split: str = "train",
                 gap: tuple[int, int] = (0, 2), generator: torch.Generator | None = None, device=None):
    """A batch of strips of handwritten digits, to be read one pixel column at a time.

    Each strip holds between ``n_digits[0]`` and ``n_digits[1]`` digit images (drawn from
    ``digit_images(split)``) side by side, with ``gap[0]`` to ``gap[1]`` blank columns before,
    between and after them. Strips shorter than the longest of the batch are padded with blank
    columns at the end, which is just more paper, so every strip has the same length T.

    Returns:
        x: (B, T, 8), x[b, t] the 8 pixels of column t of strip b (time is the column).
        targets: (B, L) int64, the digits of each strip (0-9), padded with 0 after its length.
        target_lengths: (B,) int64, the number of digits of each strip.
    """
    check_sizes(batch_size=batch_size)
    lo, hi = n_digits
    if not 1 <= lo <= hi or not 0 <= gap[0] <= gap[1]:
        raise ValueError(f"need 1 <= n_digits[0] <= n_digits[1] and 0 <= gap[0] <= gap[1], got {n_digits}, {gap}")
    images, labels = digit_images(split)
    gdev = generator.device if generator is not None else torch.device("cpu")
    lengths = torch.randint(lo, hi + 1, (batch_size,), generator=generator, device=gdev).cpu()  # (B,)
    picks = torch.randint(len(labels), (batch_size, hi), generator=generator, device=gdev).cpu()  # (B, hi)
    widths = torch.randint(gap[0], gap[1] + 1, (batch_size, hi + 1), generator=generator, device=gdev).cpu()
    used = torch.arange(hi) < lengths[:, None]  # (B, hi): digit k belongs to strip b
    # digit k starts after the gaps 0..k and the k digits before it (8 columns each)
    starts = widths[:, :hi].cumsum(1) + 8 * torch.arange(hi)  # (B, hi)
    ends = starts[torch.arange(batch_size), lengths - 1] + 8 + widths[torch.arange(batch_size), lengths]  # (B,)
    x = torch.zeros(batch_size, int(ends.max()), 8)  # (B, T, 8); zeros are paper
    b, k = used.nonzero(as_tuple=True)  # one row per digit placed
    cols = starts[b, k][:, None] + torch.arange(8)  # (D, 8): the columns digit (b, k) covers
    x[b[:, None], cols] = images[picks[b, k]].transpose(1, 2)  # columns of each image: (D, 8, 8)
    targets = torch.where(used, labels[picks], 0)[:, : int(lengths.max())]  # (B, L)
    dev = device or gdev
    return x.to(dev), targets.to(dev), lengths.to(dev)


# ----------------------------------------------------------------------------------------------
# Captions (chapter 4): an image in, a sentence out

_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class Captions(NamedTuple):
    """A batch of digit images and their captions: images (B, 8, W), the target ids (B, T) ending
    with EOS, and the captions as strings ("three one four")."""

    images: torch.Tensor
    target: Padded
    target_text: list[str]


@functools.lru_cache(maxsize=1)
def caption_vocab() -> Vocab:
    """The words of ``digit_captions``: PAD, BOS, EOS, then "zero" ... "nine" (digit d has id d + 3)."""
    return seq2seq_vocab(_WORDS)



def digit_captions(batch_size: int, n_digits: tuple[int, int] = (1, 4), split: str = "train",
                   generator: torch.Generator | None = None, device=None) -> Captions:
    """Image captioning in miniature (Seed 002, "One to many"): name the handwritten digits of an image.

    Each image holds between ``n_digits[0]`` and ``n_digits[1]`` digit images of
    ``digit_images(split)`` side by side without gaps, from the left; the columns after the last
    digit are blank (0). The caption is the digits' English words, one token each, then EOS: an
    encoder reads the image whole (not column by column, as CTC's recogniser does), a decoder
    writes the words.

    Returns:
        ``Captions``: images (B, 8, 8 * n_digits[1]) floats in [0, 1]; target (B, T) ids of
        ``caption_vocab()``, T - 1 the most digits in the batch; target_text the B captions.
    """
    check_sizes(batch_size=batch_size)
    lo, hi = n_digits
    if not isinstance(lo, int) or not isinstance(hi, int) or not 1 <= lo <= hi:
        raise ValueError(f"n_digits must be a pair of ints (lo, hi) with 1 <= lo <= hi, got {n_digits!r}")
    images, labels = digit_images(split)
    gdev = gen_device(generator)
    lengths = torch.randint(lo, hi + 1, (batch_size,), generator=generator, device=gdev).cpu()  # (B,)
    picks = torch.randint(len(labels), (batch_size, hi), generator=generator, device=gdev).cpu()  # (B, hi)
    used = torch.arange(hi) < lengths[:, None]  # (B, hi): digit k belongs to image b
    tiles = images[picks] * used[:, :, None, None]  # (B, hi, 8, 8), unused places blank
    x = tiles.permute(0, 2, 1, 3).reshape(batch_size, 8, 8 * hi)  # (B, 8, hi * 8): tiles side by side
    words = [[_WORDS[d] for d in labels[row[:n]].tolist()] for row, n in zip(picks, lengths.tolist())]
    vocab, dev = caption_vocab(), device or gdev
    target = encode_pairs([([], w) for w in words], vocab, vocab, device=dev).target
    return Captions(x.to(dev), target, [" ".join(w) for w in words])

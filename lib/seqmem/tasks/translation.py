"""Small real-language translation tasks, for sequence to sequence (chapter 4).

Seed 002, "Many to many (no limitation)": machine translation, where the output's length has no
fixed relation to the input's. Two tasks small enough to learn on a laptop, and real enough that
their rules are not a lookup table:

- **Numbers, English to Chinese.** ``number_translation`` writes n in 0 ... 9999 in British English
  words, "three thousand and twelve", and asks for its Chinese reading, 三千零一十二. The two
  languages order the parts alike but differ in the details a model must learn: English says
  "and" before the last two digits, Chinese says 零 for an inner run of zeros; English has words
  for 11-19, Chinese builds them from 十; lengths differ (four words, six characters here).
- **Date normalisation.** ``date_normalisation`` writes a date of 1950-2049 in one of five styles,
  "Friday 12 March 2021", "12/03/2021", ..., and asks for its ISO 8601 form, 2021-03-12.

Both split their space (the 10,000 numbers, the 36,525 dates) once, by a fixed permutation that no
generator touches, into a training part and a held-out 20 % (``number_split``, ``date_split``), so
a test set measures translation of inputs never trained on.

Tokens: English words for the numbers ("twenty-one" is the two tokens "twenty", "one", which keeps
the vocabulary to 31 words), and characters everywhere else (the Chinese numerals, both sides of a
date). Vocabularies are ``seqmem.text.seq2seq_vocab``s (PAD 0, BOS 1, EOS 2).

Dimensions: B batch, S source length, T target length.
"""
from __future__ import annotations

import datetime
import functools

import torch

from ..text import Pairs, Vocab, encode_pairs, seq2seq_vocab
from ._common import check_sizes, gen_device

__all__ = ["number_words", "chinese_numeral", "number_vocabs", "number_split", "number_translation",
           "DATE_STYLES", "date_text", "date_vocabs", "date_split", "date_normalisation"]

#: The share of every space that is held out for testing.
TEST_FRACTION = 0.2


def _split(n_items: int, split: str) -> torch.Tensor:
    """Indices 0 ... n_items - 1 of one part of a fixed cut: the first 20 % of a seed-0 permutation
    is the test part. The same on every call and every machine; no generator is drawn from."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    order = torch.randperm(n_items, generator=torch.Generator().manual_seed(0))
    n_test = round(TEST_FRACTION * n_items)
    return (order[:n_test] if split == "test" else order[n_test:]).sort().values


def _draw(pool_size: int, batch_size: int, generator) -> list[int]:
    """B uniform indices into a pool, drawn on the generator's device."""
    return torch.randint(pool_size, (batch_size,), generator=generator, device=gen_device(generator)).tolist()


# ----------------------------------------------------------------------------------------------
# Numbers: English words and the Chinese reading

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_CHINESE_DIGITS = "零一二三四五六七八九"
_CHINESE_UNITS = ("", "十", "百", "千")  # the units of 10^0 ... 10^3
MAX_NUMBER = 9999


def _check_number(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"n must be an int in [0, {MAX_NUMBER}], got {n!r}")


def _below_hundred(n: int) -> list[str]:
    """1 ... 99: "seven", "seventeen", "seventy", "seventy seven"."""
    if n < 20:
        return [_ONES[n]]
    return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def number_words(n: int) -> list[str]:
    """The British English words of 0 <= n <= 9999, one token per word.

    "and" stands before the last two digits whenever a hundred or a thousand comes before them:
    105 -> "one hundred and five", 3012 -> "three thousand and twelve", 3100 -> "three thousand one
    hundred". A hyphenated tens word is two tokens: 21 -> ["twenty", "one"].
    """
    _check_number(n)
    if n == 0:
        return ["zero"]
    thousands, hundreds, rest = n // 1000, n // 100 % 10, n % 100
    words = []
    if thousands:
        words += [_ONES[thousands], "thousand"]
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest:
        words += (["and"] if words else []) + _below_hundred(rest)
    return words


def chinese_numeral(n: int) -> str:
    """The standard Chinese reading of 0 <= n <= 9999, in characters.

    Each non-zero digit is read with its unit (千, 百, 十, none), from the highest down; a run of
    zeros between non-zero digits is read as one 零, trailing zeros are not read: 3012 -> 三千零一十二,
    1001 -> 一千零一, 1100 -> 一千一百, 110 -> 一百一十. Below 20 the leading 一 of the ten is
    dropped: 12 -> 十二 (but 112 -> 一百一十二). 0 -> 零. The digit 2 is always 二 (speech often says
    两 before 千 and 百; that variant is not used).
    """
    _check_number(n)
    if n == 0:
        return "零"
    digits = [n // 10 ** k % 10 for k in range(3, -1, -1)]  # thousands, hundreds, tens, units
    out, zero_pending = "", False
    for k, d in zip(range(3, -1, -1), digits):
        if d == 0:
            zero_pending = bool(out)  # a zero counts only after something has been read
            continue
        out += ("零" if zero_pending else "") + _CHINESE_DIGITS[d] + _CHINESE_UNITS[k]
        zero_pending = False
    return out[1:] if 10 <= n < 20 else out  # 十二, not 一十二


@functools.lru_cache(maxsize=1)
def number_vocabs() -> tuple[Vocab, Vocab]:
    """The vocabularies of ``number_translation``: English words (source), Chinese characters (target)."""
    english = [*_ONES, *_TENS[2:], "hundred", "thousand", "and"]
    chinese = [*_CHINESE_DIGITS, *_CHINESE_UNITS[1:]]
    return seq2seq_vocab(english), seq2seq_vocab(chinese)


def number_split(split: str = "train") -> list[int]:
    """The numbers of one split, sorted: 8,000 for "train", the 2,000 others for "test"."""
    return _split(MAX_NUMBER + 1, split).tolist()


def number_translation(batch_size: int, split: str = "train", generator: torch.Generator | None = None,
                       device=None) -> Pairs:
    """A batch of numbers to translate from English words to Chinese numerals.

    n is drawn uniformly from ``number_split(split)``. The source is ``number_words(n)`` (word
    tokens, text joined with spaces), the target ``chinese_numeral(n)`` (character tokens, text
    without spaces), both ids of ``number_vocabs()``.

    Returns:
        ``Pairs``: source (B, S), S <= 7 words; target (B, T), T <= 8 (seven characters and EOS).
    """
    check_sizes(batch_size=batch_size)
    pool = number_split(split)
    numbers = [pool[i] for i in _draw(len(pool), batch_size, generator)]
    words, chinese = [number_words(n) for n in numbers], [chinese_numeral(n) for n in numbers]
    src, tgt = number_vocabs()
    return encode_pairs(list(zip(words, chinese)), src, tgt, [" ".join(w) for w in words], chinese,
                        device or gen_device(generator))


# ----------------------------------------------------------------------------------------------
# Dates: five ways of writing one, and ISO 8601

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
#: The styles ``date_text`` writes, each shown on 12 March 2021 (a Friday).
DATE_STYLES = ("12 March 2021", "March 12, 2021", "12 Mar 2021", "12/03/2021", "Friday 12 March 2021")
FIRST_DATE, LAST_DATE = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)


def date_text(date: datetime.date, style: int = 0) -> str:
    """``date`` written in ``DATE_STYLES[style]``: the day without a leading zero except in the
    numeric style 4 (day/month/year, British order), month names in full or cut to three letters.
    Written from fixed English names, whatever the machine's locale."""
    if not isinstance(date, datetime.date):
        raise ValueError(f"date must be a datetime.date, got {type(date).__name__}")
    if not isinstance(style, int) or isinstance(style, bool) or not 0 <= style < len(DATE_STYLES):
        raise ValueError(f"style must be an int in [0, {len(DATE_STYLES)}), got {style!r}")
    d, month, y = date.day, _MONTHS[date.month - 1], date.year
    return (f"{d} {month} {y}", f"{month} {d}, {y}", f"{d} {month[:3]} {y}", f"{d:02d}/{date.month:02d}/{y}",
            f"{_WEEKDAYS[date.weekday()]} {d} {month} {y}")[style]


@functools.lru_cache(maxsize=1)
def date_vocabs() -> tuple[Vocab, Vocab]:
    """The character vocabularies of ``date_normalisation``: source (names, digits, " ", ",", "/"),
    target (the digits and "-"), each sorted."""
    source = sorted(set("".join(_MONTHS + _WEEKDAYS) + "0123456789 ,/"))
    return seq2seq_vocab(source), seq2seq_vocab(sorted("0123456789-"))


@functools.lru_cache(maxsize=2)
def _date_pool(split: str) -> tuple[datetime.date, ...]:
    first = FIRST_DATE.toordinal()
    n_days = LAST_DATE.toordinal() - first + 1  # 36,525: 100 years, 25 of them leap
    return tuple(datetime.date.fromordinal(first + i) for i in _split(n_days, split).tolist())


def date_split(split: str = "train") -> list[datetime.date]:
    """The dates of one split, in calendar order: 80 % of 1950-01-01 ... 2049-12-31 for "train",
    the other 20 % for "test"."""
    return list(_date_pool(split))


def date_normalisation(batch_size: int, split: str = "train", generator: torch.Generator | None = None,
                       device=None) -> Pairs:
    """A batch of dates to rewrite from a human style into ISO 8601 (YYYY-MM-DD).

    A date is drawn uniformly from ``date_split(split)`` and a style uniformly from
    ``DATE_STYLES``. Source and target are characters, ids of ``date_vocabs()``; the texts are the
    strings themselves, "Friday 12 March 2021" and "2021-03-12".

    Returns:
        ``Pairs``: source (B, S), S <= 27 characters; target (B, 11) (ten characters and EOS).
    """
    check_sizes(batch_size=batch_size)
    pool = _date_pool(split)
    picks = _draw(len(pool), batch_size, generator)
    styles = _draw(len(DATE_STYLES), batch_size, generator)
    sources = [date_text(pool[i], s) for i, s in zip(picks, styles)]
    targets = [pool[i].isoformat() for i in picks]
    src, tgt = date_vocabs()
    return encode_pairs(list(zip(sources, targets)), src, tgt, sources, targets, device or gen_device(generator))

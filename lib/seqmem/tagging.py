"""Sequence labelling with spans: IO, BIO and BIOES tags, and span-level precision, recall and F1.

Named-entity recognition labels each token, but what it finds are *spans*: "United Airlines
Holding" is one organisation, three tokens long. A tagging scheme writes spans as one tag per token
(the lecture's table, from the seed):

=========== ======= ======= =========
token       IO      BIO     BIOES
=========== ======= ======= =========
Jane        I-PER   B-PER   B-PER
Villanueva  I-PER   I-PER   E-PER
of          O       O       O
United      I-ORG   B-ORG   B-ORG
Airlines    I-ORG   I-ORG   I-ORG
Holding     I-ORG   I-ORG   E-ORG
discussed   O       O       O
the         O       O       O
Chicago     I-LOC   B-LOC   S-LOC
route       O       O       O
=========== ======= ======= =========

- IO marks tokens inside a span of a type (I-X) or outside every span (O). It cannot separate two
  adjacent spans of the same type: ``tags_from_spans`` in IO merges them into one.
- BIO marks the beginning (B-X) of each span, so adjacent spans stay apart.
- BIOES also marks the end (E-X) of a span and single-token spans (S-X).

A span here is ``Span(type, start, end)`` with ``end`` exclusive, as in Python slicing:
Jane Villanueva is ``Span("PER", 0, 2)``.

**Ill-formed sequences.** A model's output need not be well formed: I-PER after O (an inside
without a beginning), I-ORG right after B-PER (a type change), B-PER not closed by E-PER in BIOES.
By default (``strict=False``) they are read as the CoNLL evaluation script ``conlleval`` reads them:
an I-X or E-X that does not continue an open span of type X starts a new span; a span still open
when the next tag is O, B-, S- or another type ends there. So ``O I-PER I-PER`` holds the span
PER [1, 3), and ``B-PER I-ORG`` two spans. With ``strict=True`` an ill-formed sequence raises a
``ValueError`` that names the position. A tag whose prefix the scheme lacks (S-X in BIO, B-X in IO)
is an error in either mode.


Scoring a tagger by its spans is ``seqmem.metrics.span_scores``.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

__all__ = ["SCHEMES", "Span", "spans_from_tags", "tags_from_spans", "convert_tags"]

#: the tag prefixes each scheme uses
SCHEMES = {"IO": ("I", "O"), "BIO": ("B", "I", "O"), "BIOES": ("B", "I", "O", "E", "S")}


class Span(NamedTuple):
    """A labelled span of tokens [start, end), end exclusive."""

    type: str
    start: int
    end: int


# ------------------------------------------------------------------ tags -> spans


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")


def _parse(tag: str, scheme: str, position: int) -> tuple[str, str | None]:
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', None). The type may itself contain '-'."""
    if tag == "O":
        return "O", None
    prefix, dash, kind = tag.partition("-") if isinstance(tag, str) else ("", "", "")
    if not dash or not kind or prefix not in SCHEMES[scheme] or prefix == "O":
        allowed = ", ".join(f"{p}-X" for p in SCHEMES[scheme] if p != "O")
        raise ValueError(f"tag {tag!r} at position {position} is not a {scheme} tag (expected O, {allowed})")
    return prefix, kind


def spans_from_tags(tags: Sequence[str], scheme: str = "BIO", strict: bool = False) -> list[Span]:
    """The spans a tag sequence marks, in order.

    Ill-formed sequences are repaired as ``conlleval`` does (see the module docstring), or raise a
    ``ValueError`` with ``strict=True``.
    """
    _check_scheme(scheme)
    parsed = [_parse(tag, scheme, i) for i, tag in enumerate(tags)]
    if strict:
        _check_well_formed(parsed, scheme)
    spans, open_span = [], None  # open_span: (type, start) of the span being read
    for i, (prefix, kind) in enumerate(parsed):
        continues = prefix in ("I", "E") and open_span is not None and open_span[0] == kind
        if open_span is not None and not continues:  # O, B-, S-, a new type, or a stray I-/E-
            spans.append(Span(open_span[0], open_span[1], i))
            open_span = None
        if prefix != "O" and not continues:
            open_span = (kind, i)
        if prefix in ("E", "S"):  # BIOES: the span ends at this token
            spans.append(Span(kind, open_span[1], i + 1))
            open_span = None
    if open_span is not None:
        spans.append(Span(open_span[0], open_span[1], len(parsed)))
    return spans


def _check_well_formed(parsed, scheme: str) -> None:
    """Raise a ValueError at the first tag that breaks the scheme's grammar."""
    edge = ("O", None)
    for i, (prefix, kind) in enumerate(parsed):
        before = parsed[i - 1] if i > 0 else edge
        after = parsed[i + 1] if i + 1 < len(parsed) else edge
        if scheme != "IO" and prefix in ("I", "E") and not (before[0] in ("B", "I") and before[1] == kind):
            raise ValueError(f"ill-formed {scheme}: {prefix}-{kind} at position {i} does not continue "
                             f"a {kind} span (the tag before it is {_show(before)})")
        if scheme == "BIOES" and prefix in ("B", "I") and not (after[0] in ("I", "E") and after[1] == kind):
            raise ValueError(f"ill-formed BIOES: the {kind} span open at position {i} is not continued "
                             f"by I-{kind} or closed by E-{kind} (the tag after it is {_show(after)})")


def _show(parsed_tag) -> str:
    prefix, kind = parsed_tag
    return "O or the sequence's edge" if prefix == "O" else f"{prefix}-{kind}"


# ------------------------------------------------------------------ spans -> tags


def tags_from_spans(spans: Sequence[tuple[str, int, int]], length: int, scheme: str = "BIO") -> list[str]:
    """Tag ``length`` tokens so that they mark ``spans`` (non-overlapping, end exclusive)."""
    _check_scheme(scheme)
    tags = ["O"] * length
    for kind, start, end in _checked_spans(spans, length):
        if scheme == "IO":
            tags[start:end] = [f"I-{kind}"] * (end - start)
        elif scheme == "BIO":
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif end - start == 1:  # BIOES, a single token
            tags[start] = f"S-{kind}"
        else:
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 2) + [f"E-{kind}"]
    return tags


def _checked_spans(spans, length: int) -> list[Span]:
    """Spans as ``Span``s sorted by start; ValueError if one is empty, out of range or overlaps."""
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    out = sorted((Span(*s) for s in spans), key=lambda s: s.start)
    for s in out:
        if not isinstance(s.type, str) or not s.type or not 0 <= s.start < s.end <= length:
            raise ValueError(f"span {tuple(s)} must be (type, start, end) with a non-empty type "
                             f"and 0 <= start < end <= length={length}")
    for a, b in zip(out, out[1:]):
        if b.start < a.end:
            raise ValueError(f"spans {tuple(a)} and {tuple(b)} overlap")
    return out


def convert_tags(tags: Sequence[str], source: str, target: str, strict: bool = False) -> list[str]:
    """Rewrite a tag sequence from one scheme to another, through its spans.

    An ill-formed ``source`` sequence comes out repaired (or raises, with ``strict=True``); to IO,
    adjacent spans of one type merge.
    """
    return tags_from_spans(spans_from_tags(tags, source, strict), len(tags), target)

"""Tables of integers with templated questions, for the Neural Programmer (chapter 9).

Neelakantan, Le and Sutskever (2016) trained their Neural Programmer on synthetic tables: columns of
numbers and questions made from templates, each answered by a short program of table operations
("sum the values greater than 50"), the answer computed exactly and the program never shown to the
model: only the answer is. The tables here are small, a laptop's size: ``rows`` rows (8) and
``columns`` columns (1 by default, the single-column task), named by words drawn from
``TABLE_COLUMNS`` in a random order per table, each column holding distinct integers from
``0 ... high - 1`` (50), so that a largest value is one row's. The question kinds (``TABLE_KINDS``),
with the program that answers each (``reference_program``; ops as in ``seqmem.programmer``):

=====================  =======================================================  =================================
kind                   template                                                 program
=====================  =======================================================  =================================
``sum``                what is the sum of {col} ?                               sum(col)
``count_greater``      how many {col} are greater than {n} ?                    greater(col), count
``count_less``         how many {col} are less than {n} ?                       lesser(col), count
``sum_greater``        what is the sum of {col} greater than {n} ?              greater(col), sum(col)
``sum_less``           what is the sum of {col} less than {n} ?                 lesser(col), sum(col)
``max``                what is the largest {col} ?                              argmax(col), sum(col)
``min``                what is the smallest {col} ?                             argmin(col), sum(col)
``count_between``      how many {col} are greater than {n} and less than {m} ?  greater, lesser, and, count
``difference``         how many more {col} are greater than {n} than less       greater, count, lesser, count,
                       than {m} ?                                               difference
``print_greater``      which {col} are greater than {n} ?                       greater(col), assign(col)
``print_less``         which {col} are less than {n} ?                          lesser(col), assign(col)
=====================  =======================================================  =================================

and two that need two columns (``MULTI_COLUMN_KINDS``, drawn only when ``columns`` > 1): "what is
the sum of {col} where {other} is greater than {n} ?" (greater(other), sum(col)) and "which {col}
have {other} greater than {n} ?" (greater(other), assign(col)). The ``print`` kinds answer with
cells of the table (a lookup answer: a 0/1 mask over rows and columns), the others with a number
(a scalar answer). A question's numbers are taken out and returned apart, as the paper does, each
with its position; here the token ``<num>`` keeps its place in the question, and the model must
learn which number goes with which comparison. In ``difference`` the two groups are disjoint and the
first is the larger (m <= n, redrawn until #(v > n) >= #(v < m)), so that "how many more" has a
count for its answer.

Draws: one 62-bit integer per table from the ``torch.Generator`` seeds a Python ``random.Random``,
as ``seqmem.tasks.babi`` does; a seed fixes every table and question.

Dimensions: B tables, M rows, C columns, L question words, K = 2 numbers per question (at most).
"""
from __future__ import annotations

import functools
import random
from typing import NamedTuple

import torch

from ..text import Vocab
from ._common import check_sizes, gen_device

__all__ = ["TABLE_COLUMNS", "TABLE_KINDS", "MULTI_COLUMN_KINDS", "Tables", "table_vocab", "table_questions",
           "reference_program", "table_question_text"]

#: The words that name columns; a table of C columns uses C of them, in a random order.
TABLE_COLUMNS = ("apples", "pears", "plums", "figs", "limes")
_TEMPLATES = {
    "sum": "what is the sum of {col} ?",
    "count_greater": "how many {col} are greater than {n} ?",
    "count_less": "how many {col} are less than {n} ?",
    "sum_greater": "what is the sum of {col} greater than {n} ?",
    "sum_less": "what is the sum of {col} less than {n} ?",
    "max": "what is the largest {col} ?",
    "min": "what is the smallest {col} ?",
    "count_between": "how many {col} are greater than {n} and less than {m} ?",
    "difference": "how many more {col} are greater than {n} than less than {m} ?",
    "print_greater": "which {col} are greater than {n} ?",
    "print_less": "which {col} are less than {n} ?",
    "sum_where_greater": "what is the sum of {col} where {other} is greater than {n} ?",
    "print_where_greater": "which {col} have {other} greater than {n} ?",
}
#: The question kinds of one column, in this order (``Tables.kinds`` indexes ``TABLE_KINDS`` +
#: ``MULTI_COLUMN_KINDS``).
TABLE_KINDS = ("sum", "count_greater", "count_less", "sum_greater", "sum_less", "max", "min", "count_between",
               "difference", "print_greater", "print_less")
#: The kinds that compare one column and answer from another.
MULTI_COLUMN_KINDS = ("sum_where_greater", "print_where_greater")
_PRINT_KINDS = {"print_greater", "print_less", "print_where_greater"}
_PAD, _NUM = "<pad>", "<num>"
K_NUMBERS = 2


class Tables(NamedTuple):
    """B tables and a question about each.

    ``tables`` (B, M, C) float, integer values; ``columns`` (B, C) the word ids of the columns'
    names; ``questions`` (B, L) word ids padded with 0, each number replaced by ``<num>``, and
    ``lengths`` (B,); ``numbers`` (B, K) the question's numbers in order, ``number_positions``
    (B, K) the index of each one's ``<num>`` in the question and ``number_mask`` (B, K) True where a
    number is (0 and False after the last); ``is_scalar`` (B,) True for a number answer, False for
    a lookup; ``scalar_answers`` (B,) float (0 for a lookup) and ``lookup_answers`` (B, M, C) 0/1
    float, the cells that answer a lookup (all 0 for a scalar); ``kinds`` (B,) an index into
    ``TABLE_KINDS + MULTI_COLUMN_KINDS``; ``asked`` (B, 2) the column the answer comes from and
    the column compared (the same column but for the multi-column kinds).
    """

    tables: torch.Tensor
    columns: torch.Tensor
    questions: torch.Tensor
    lengths: torch.Tensor
    numbers: torch.Tensor
    number_positions: torch.Tensor
    number_mask: torch.Tensor
    is_scalar: torch.Tensor
    scalar_answers: torch.Tensor
    lookup_answers: torch.Tensor
    kinds: torch.Tensor
    asked: torch.Tensor

    def to(self, device) -> "Tables":
        return Tables(*(t.to(device) for t in self))


@functools.lru_cache(maxsize=None)
def table_vocab() -> Vocab:
    """Every word of the templates and the column names: ``<pad>`` is id 0, ``<num>`` id 1; closed."""
    words = [w for template in _TEMPLATES.values() for w in template.split() if not w.startswith("{")]
    return Vocab([_PAD, _NUM, *words, *TABLE_COLUMNS], other=None)


def reference_program(kind: str) -> list[tuple[str, str]]:
    """The program that answers a kind: a list of (operation, column) with column ``"col"`` (the
    answer's), ``"other"`` (the compared one) or ``"-"`` (the operation reads no column)."""
    programs = {
        "sum": [("sum", "col")],
        "count_greater": [("greater", "col"), ("count", "-")],
        "count_less": [("lesser", "col"), ("count", "-")],
        "sum_greater": [("greater", "col"), ("sum", "col")],
        "sum_less": [("lesser", "col"), ("sum", "col")],
        "max": [("argmax", "col"), ("sum", "col")],
        "min": [("argmin", "col"), ("sum", "col")],
        "count_between": [("greater", "col"), ("lesser", "col"), ("and", "-"), ("count", "-")],
        "difference": [("greater", "col"), ("count", "-"), ("lesser", "col"), ("count", "-"), ("difference", "-")],
        "print_greater": [("greater", "col"), ("assign", "col")],
        "print_less": [("lesser", "col"), ("assign", "col")],
        "sum_where_greater": [("greater", "other"), ("sum", "col")],
        "print_where_greater": [("greater", "other"), ("assign", "col")],
    }
    if kind not in programs:
        raise ValueError(f"unknown question kind {kind!r}; expected one of {sorted(programs)}")
    return programs[kind]


def _answer(kind: str, values: list[int], other: list[int], numbers: list[int]) -> tuple[float, list[int]]:
    """The exact answer: (scalar, rows) with rows the selected rows of a lookup (scalar 0 then)."""
    n = numbers[0] if numbers else None
    m = numbers[1] if len(numbers) > 1 else None
    greater = [i for i, v in enumerate(values) if v > n] if n is not None else []
    less = [i for i, v in enumerate(values) if v < n] if n is not None else []
    if kind == "sum":
        return float(sum(values)), []
    if kind == "count_greater":
        return float(len(greater)), []
    if kind == "count_less":
        return float(len(less)), []
    if kind == "sum_greater":
        return float(sum(values[i] for i in greater)), []
    if kind == "sum_less":
        return float(sum(values[i] for i in less)), []
    if kind == "max":
        return float(max(values)), []
    if kind == "min":
        return float(min(values)), []
    if kind == "count_between":
        return float(sum(1 for v in values if n < v < m)), []
    if kind == "difference":
        return float(sum(1 for v in values if v > n) - sum(1 for v in values if v < m)), []
    if kind == "print_greater":
        return 0.0, greater
    if kind == "print_less":
        return 0.0, less
    compared = [i for i, v in enumerate(other) if v > n]
    if kind == "sum_where_greater":
        return float(sum(values[i] for i in compared)), []
    return 0.0, compared  # print_where_greater


def _numbers(kind: str, rng: random.Random, high: int, values: list[int]) -> list[int]:
    if kind in ("sum", "max", "min"):
        return []
    if kind == "count_between":  # n < m, with room between them
        n = rng.randrange(0, high - 2)
        return [n, rng.randrange(n + 2, high)]
    if kind == "difference":  # m <= n: disjoint groups, the first at least as large (n = m = 0 always is)
        while True:
            n = rng.randrange(high)
            m = rng.randrange(n + 1)
            if sum(v > n for v in values) >= sum(v < m for v in values):
                return [n, m]
    return [rng.randrange(high)]


def _example(rng: random.Random, rows: int, columns: int, high: int, kinds: tuple, vocab: Vocab):
    names = rng.sample(TABLE_COLUMNS, columns)
    table = [rng.sample(range(high), rows) for _ in range(columns)]  # column-major, distinct values
    kind = rng.choice(kinds)
    col = rng.randrange(columns)
    other = rng.choice([c for c in range(columns) if c != col]) if kind in MULTI_COLUMN_KINDS else col
    numbers = _numbers(kind, rng, high, table[col])
    scalar, selected = _answer(kind, table[col], table[other], numbers)
    words = _TEMPLATES[kind].format(col=names[col], other=names[other], n=_NUM, m=_NUM).split()
    positions = [i for i, w in enumerate(words) if w == _NUM]
    return (table, [vocab.index(w) for w in names], [vocab.index(w) for w in words], numbers, positions,
            kind not in _PRINT_KINDS, scalar, selected, col, kind, (col, other))


def table_questions(n: int, rows: int = 8, columns: int = 1, high: int = 50, kinds=None,
                    generator: torch.Generator | None = None, device=None) -> Tables:
    """``n`` tables of ``rows`` x ``columns`` distinct integers in 0 ... high - 1 and a question each.

    ``kinds`` (default: every kind of ``TABLE_KINDS``, plus ``MULTI_COLUMN_KINDS`` when ``columns``
    > 1) picks the templates, each drawn with equal chance.
    """
    check_sizes(n=n, rows=rows, columns=columns, high=high)
    if high < max(rows, 3):
        raise ValueError(f"high must be at least the number of rows ({rows}) and 3, so that a column holds "
                         f"distinct values, got {high}")
    if columns > len(TABLE_COLUMNS):
        raise ValueError(f"columns must be at most {len(TABLE_COLUMNS)} (the names in TABLE_COLUMNS), got {columns}")
    all_kinds = TABLE_KINDS + MULTI_COLUMN_KINDS
    if kinds is None:
        kinds = TABLE_KINDS + (MULTI_COLUMN_KINDS if columns > 1 else ())
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in all_kinds]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty selection of {all_kinds}, got {kinds}")
    if columns == 1 and any(k in MULTI_COLUMN_KINDS for k in kinds):
        raise ValueError(f"the kinds {MULTI_COLUMN_KINDS} need at least two columns, got columns=1")
    vocab = table_vocab()
    draws = torch.randint(0, 2 ** 62, (n,), generator=generator, device=gen_device(generator)).tolist()
    examples = [_example(random.Random(d), rows, columns, high, kinds, vocab) for d in draws]
    L = max(len(e[2]) for e in examples)
    tables = torch.tensor([e[0] for e in examples], dtype=torch.float32).transpose(1, 2)  # (B, M, C)
    questions = torch.zeros(n, L, dtype=torch.long)
    numbers = torch.zeros(n, K_NUMBERS)
    positions = torch.zeros(n, K_NUMBERS, dtype=torch.long)
    mask = torch.zeros(n, K_NUMBERS, dtype=torch.bool)
    lookup = torch.zeros(n, rows, columns)
    for b, e in enumerate(examples):
        questions[b, :len(e[2])] = torch.tensor(e[2])
        k = len(e[3])
        numbers[b, :k] = torch.tensor(e[3], dtype=torch.float32)
        positions[b, :k] = torch.tensor(e[4], dtype=torch.long)
        mask[b, :k] = True
        for i in e[7]:
            lookup[b, i, e[8]] = 1.0
    out = Tables(tables, torch.tensor([e[1] for e in examples]), questions, torch.tensor([len(e[2]) for e in examples]),
                 numbers, positions, mask, torch.tensor([e[5] for e in examples]),
                 torch.tensor([e[6] for e in examples], dtype=torch.float32), lookup,
                 torch.tensor([all_kinds.index(e[9]) for e in examples]), torch.tensor([e[10] for e in examples]))
    return out.to(device) if device is not None else out


def table_question_text(batch: Tables, b: int) -> str:
    """Example ``b``'s question with its numbers put back: "how many pears are greater than 17 ?"."""
    vocab = table_vocab()
    words = [vocab.tokens[int(i)] for i in batch.questions[b, :int(batch.lengths[b])]]
    numbers = iter(int(v) for v in batch.numbers[b][batch.number_mask[b]])
    return " ".join(str(next(numbers)) if w == _NUM else w for w in words)

"""seqmem.tasks.table_questions: tables of integers and templated questions (chapter 9).

The answers are checked against a second reading of the question: its words parsed back (numbers
included, from ``table_question_text``) and answered from the table, so the generator's own
answering code is not what is tested against itself.
"""
import collections

import pytest
import torch

from seqmem import tasks

from conftest import DEVICES
from helpers import gen

KINDS = tasks.TABLE_KINDS + tasks.MULTI_COLUMN_KINDS


def _read(text: str, names: list[str], table: torch.Tensor):
    """Answer a question from its words alone: (scalar or None, set of (row, column) or None)."""
    w = text.split()
    nums = [int(t) for t in w if t.lstrip("-").isdigit()]
    named = [names.index(t) for t in w if t in names]
    col = table[:, named[0]].tolist()
    if w[0] == "which":
        compared = table[:, named[1]].tolist() if len(named) > 1 else col
        keep = (lambda v: v > nums[0]) if "greater" in w else (lambda v: v < nums[0])
        return None, {(i, named[0]) for i, v in enumerate(compared) if keep(v)}
    if "more" in w:
        return sum(v > nums[0] for v in col) - sum(v < nums[1] for v in col), None
    if "where" in w:
        other = table[:, named[1]].tolist()
        return sum(v for v, o in zip(col, other) if o > nums[0]), None
    if "largest" in w or "smallest" in w:
        return (max if "largest" in w else min)(col), None
    if "and" in w:
        return sum(nums[0] < v < nums[1] for v in col), None
    chosen = [v for v in col if (not nums) or (v > nums[0] if "greater" in w else v < nums[0])]
    return (len(chosen) if w[0] == "how" else sum(chosen)), None


@pytest.mark.parametrize("columns", [1, 3])
def test_every_answer_is_what_the_question_asks_of_the_table(columns):
    batch = tasks.table_questions(600, rows=8, columns=columns, generator=gen(columns))
    vocab = tasks.table_vocab()
    for b in range(600):
        names = [vocab.tokens[int(i)] for i in batch.columns[b]]
        scalar, cells = _read(tasks.table_question_text(batch, b), names, batch.tables[b])
        if cells is None:
            assert bool(batch.is_scalar[b]) and float(batch.scalar_answers[b]) == scalar
            assert batch.lookup_answers[b].sum() == 0
        else:
            assert not bool(batch.is_scalar[b]) and float(batch.scalar_answers[b]) == 0
            assert {tuple(ij) for ij in batch.lookup_answers[b].nonzero().tolist()} == cells


def test_shapes_numbers_and_kinds():
    batch = tasks.table_questions(1500, rows=6, columns=2, high=30, generator=gen(2))
    B, M, C = batch.tables.shape
    assert (B, M, C) == (1500, 6, 2)
    assert batch.columns.shape == (B, C) and batch.lookup_answers.shape == (B, M, C)
    values = batch.tables
    assert values.min() >= 0 and values.max() <= 29 and torch.equal(values, values.round())
    for b in range(50):  # a column's values are distinct, so a largest value is one row's
        for c in range(C):
            assert len(set(values[b, :, c].tolist())) == M
        assert batch.columns[b, 0] != batch.columns[b, 1]
    vocab = tasks.table_vocab()
    num = vocab.index("<num>")
    for b in range(B):
        k = int(batch.number_mask[b].sum())
        pos = batch.number_positions[b, :k]
        assert torch.equal(batch.questions[b][pos], torch.full((k,), num))  # each number's place
        assert int((batch.questions[b] == num).sum()) == k
        assert batch.questions[b, int(batch.lengths[b]):].eq(0).all()  # padded with 0 after the end
    counts = collections.Counter(KINDS[k] for k in batch.kinds.tolist())
    assert set(counts) == set(KINDS)  # two columns: every kind, the multi-column ones included
    assert min(counts.values()) > 0.5 * B / len(KINDS)
    between = batch.kinds == KINDS.index("count_between")
    assert (batch.numbers[between, 0] + 2 <= batch.numbers[between, 1]).all()
    more = batch.kinds == KINDS.index("difference")  # "how many more": disjoint groups, a count
    assert (batch.numbers[more, 1] <= batch.numbers[more, 0]).all() and (batch.scalar_answers[more] >= 0).all()
    assert (batch.scalar_answers[more] > 0).float().mean() > 0.5
    one = tasks.table_questions(500, columns=1, generator=gen(3))
    assert set(KINDS[k] for k in one.kinds.tolist()) == set(tasks.TABLE_KINDS)
    assert torch.equal(one.asked[:, 0], one.asked[:, 1])


def test_kinds_can_be_chosen_and_programs_are_listed():
    batch = tasks.table_questions(100, kinds=["max", "print_less"], generator=gen(4))
    assert set(KINDS[k] for k in batch.kinds.tolist()) == {"max", "print_less"}
    assert tasks.reference_program("count_between") == [("greater", "col"), ("lesser", "col"), ("and", "-"),
                                                        ("count", "-")]
    assert all(tasks.reference_program(k) for k in KINDS)
    with pytest.raises(ValueError, match="unknown question kind"):
        tasks.reference_program("median")


@pytest.mark.parametrize("dev", DEVICES)
def test_a_seed_fixes_the_data_on_every_device(dev):
    a = tasks.table_questions(40, columns=2, generator=gen(5), device=dev)
    b = tasks.table_questions(40, columns=2, generator=gen(5))
    for u, w in zip(a, b):
        assert u.device.type == dev and torch.equal(u.cpu(), w)
    c = tasks.table_questions(40, columns=2, generator=gen(6))
    assert not torch.equal(b.tables, c.tables)


def test_bad_arguments_say_what_was_expected():
    with pytest.raises(ValueError, match="rows"):
        tasks.table_questions(4, rows=0)
    with pytest.raises(ValueError, match="high must be at least"):
        tasks.table_questions(4, rows=8, high=5)
    with pytest.raises(ValueError, match="columns must be at most 5"):
        tasks.table_questions(4, columns=6)
    with pytest.raises(ValueError, match="need at least two columns"):
        tasks.table_questions(4, kinds=["sum_where_greater"])
    with pytest.raises(ValueError, match="kinds must be"):
        tasks.table_questions(4, kinds=["median"])

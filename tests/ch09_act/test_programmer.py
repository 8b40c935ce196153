"""seqmem.programmer: the Neural Programmer (chapter 9).

Pinned here: every operation, chosen alone, computes what the paper's table says (against loops
written out here); a soft step is the mixture of the hard steps, weighed by alpha_op x alpha_col;
the reference programs of ``tasks.reference_program`` executed step by step answer every question
exactly; the model's shapes and its hard programs; the gradient reaches every parameter,
and the pivot attention only with a comparison width; the Huber and lookup losses against hand
computations; the answer rule; the annealed gradient noise's size; and bad inputs.
"""
import math

import pytest
import torch

from seqmem import programmer as P
from seqmem import tasks

from conftest import DEVICES
from helpers import gen

OPS = P.OPERATIONS
KINDS = tasks.TABLE_KINDS + tasks.MULTI_COLUMN_KINDS


def _one_hot(i, n, B=1, dtype=torch.float64):
    a = torch.zeros(B, n, dtype=dtype)
    a[:, i] = 1
    return a


def _random_state(B, M, C, seed, dtype=torch.float64):
    g = gen(seed)
    table = torch.randint(0, 20, (B, M, C), generator=g).to(dtype)
    rs = torch.rand(B, M, generator=g, dtype=dtype)
    rs_before = torch.rand(B, M, generator=g, dtype=dtype)
    scalars = torch.randn(B, 3, generator=g, dtype=dtype) * 10
    state = P.ProgramState(rs, rs_before, scalars, torch.zeros(B, M, C, dtype=dtype))
    pivots = torch.randint(0, 20, (B, 2), generator=g).to(dtype)
    return table, state, pivots


def _by_hand(op, j, table, st, piv, b):
    """What the paper's table 1 says one operation on column j gives for example b: (scalar, rows, lookup)."""
    M, C = table.shape[1:]
    rs, before, s = st.row_select[b].tolist(), st.row_select_before[b].tolist(), st.scalars[b].tolist()
    col = table[b, :, j].tolist()
    zero_rows, zero_lookup = [0.0] * M, [[0.0] * C for _ in range(M)]
    if op == "sum":
        return sum(r * v for r, v in zip(rs, col)), zero_rows, zero_lookup
    if op == "count":
        return sum(rs), zero_rows, zero_lookup
    if op == "difference":
        return s[2] - s[0], zero_rows, zero_lookup
    if op == "assign":
        return 0.0, zero_rows, [[rs[i] if c == j else 0.0 for c in range(C)] for i in range(M)]
    rows = {"greater": [float(v > piv[b, 0]) for v in col], "lesser": [float(v < piv[b, 1]) for v in col],
            "and": [min(a, c) for a, c in zip(rs, before)], "or": [max(a, c) for a, c in zip(rs, before)],
            "reset": [1.0] * M}
    if op in ("argmax", "argmin"):
        out = []
        for i in range(M):
            keep = rs[i]
            for k in range(M):
                if (col[k] > col[i]) if op == "argmax" else (col[k] < col[i]):
                    keep *= 1 - rs[k]
            out.append(keep)
        rows[op] = out
    return 0.0, rows[op], zero_lookup


@pytest.mark.parametrize("op", OPS)
def test_each_operation_alone_computes_what_the_papers_table_says(op):
    B, M, C = 3, 5, 2
    table, state, piv = _random_state(B, M, C, seed=OPS.index(op))
    table[0, 1, 1] = table[0, 3, 1]  # a tie in a column
    for j in range(C):
        new = P.operation_step(state, _one_hot(OPS.index(op), len(OPS), B), _one_hot(j, C, B), table, piv)
        for b in range(B):
            scalar, rows, lookup = _by_hand(op, j, table, state, piv, b)
            assert math.isclose(float(new.scalars[b, 0]), scalar, abs_tol=1e-9)
            torch.testing.assert_close(new.row_select[b], torch.tensor(rows, dtype=table.dtype))
            torch.testing.assert_close(new.lookup[b], torch.tensor(lookup, dtype=table.dtype))
        torch.testing.assert_close(new.row_select_before, state.row_select)  # the history shifts by one
        torch.testing.assert_close(new.scalars[:, 1:], state.scalars[:, :2])


def test_argmax_and_argmin_select_the_extreme_selected_row():
    table = torch.tensor([[[3.0], [9.0], [5.0], [1.0]]], dtype=torch.float64)  # (1, 4, 1)
    rs = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)  # row 1 (the 9) not selected
    state = P.ProgramState(rs, rs, torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 4, 1, dtype=torch.float64))
    piv = torch.zeros(1, 2, dtype=torch.float64)
    top = P.operation_step(state, _one_hot(OPS.index("argmax"), len(OPS)), _one_hot(0, 1), table, piv)
    low = P.operation_step(state, _one_hot(OPS.index("argmin"), len(OPS)), _one_hot(0, 1), table, piv)
    assert top.row_select.tolist() == [[0.0, 0.0, 1.0, 0.0]]  # the 5: the largest selected
    assert low.row_select.tolist() == [[0.0, 0.0, 0.0, 1.0]]


def test_a_soft_step_is_the_mixture_of_the_hard_steps():
    B, M, C = 4, 6, 3
    table, state, piv = _random_state(B, M, C, seed=11)
    g = gen(12)
    alpha_op = torch.softmax(torch.randn(B, len(OPS), generator=g, dtype=torch.float64), -1)
    alpha_col = torch.softmax(torch.randn(B, C, generator=g, dtype=torch.float64), -1)
    soft = P.operation_step(state, alpha_op, alpha_col, table, piv)
    mix = [torch.zeros_like(t) for t in (soft.row_select, soft.scalars[:, 0], soft.lookup)]
    for o in range(len(OPS)):
        for j in range(C):
            hard = P.operation_step(state, _one_hot(o, len(OPS), B), _one_hot(j, C, B), table, piv)
            w = alpha_op[:, o] * alpha_col[:, j]  # (B,)
            mix[0] += w[:, None] * hard.row_select
            mix[1] += w * hard.scalars[:, 0]
            mix[2] += w[:, None, None] * hard.lookup
    torch.testing.assert_close(soft.row_select, mix[0])
    torch.testing.assert_close(soft.scalars[:, 0], mix[1])
    torch.testing.assert_close(soft.lookup, mix[2])
    assert (soft.row_select >= 0).all() and (soft.row_select <= 1 + 1e-12).all()  # still a soft set of rows


def _execute(batch, b, T=5):
    """Example b's reference program, preceded by resets to T steps, run by operation_step."""
    program = tasks.reference_program(KINDS[batch.kinds[b]])
    program = [("reset", "-")] * (T - len(program)) + program
    table = batch.tables[b:b + 1]
    C = table.shape[2]
    n = batch.numbers[b, batch.number_mask[b]].tolist()
    piv = torch.tensor([[n[0] if n else 0.0, n[-1] if n else 0.0]])  # greater gets n, lesser the last
    state = P.initial_program_state(table)
    for op, col in program:
        column = int(batch.asked[b, 1] if col == "other" else batch.asked[b, 0])
        state = P.operation_step(state, _one_hot(OPS.index(op), len(OPS), dtype=table.dtype),
                                 _one_hot(column, C, dtype=table.dtype), table, piv)
    return state


@pytest.mark.parametrize("columns", [1, 3])
def test_the_reference_programs_answer_every_question_exactly(columns):
    batch = tasks.table_questions(400, columns=columns, generator=gen(20 + columns))
    seen = set()
    for b in range(400):
        state = _execute(batch, b)
        if batch.is_scalar[b]:
            assert float(state.scalars[0, 0]) == float(batch.scalar_answers[b])
        else:
            assert torch.equal(state.lookup[0], batch.lookup_answers[b])
        seen.add(KINDS[batch.kinds[b]])
    assert seen == set(tasks.TABLE_KINDS + (tasks.MULTI_COLUMN_KINDS if columns > 1 else ()))


def _model(d=16, steps=5, seed=0, dev="cpu"):
    torch.manual_seed(seed)
    return P.NeuralProgrammer(len(tasks.table_vocab()), d=d, steps=steps).to(dev)


@pytest.mark.parametrize("dev", DEVICES)
def test_the_model_returns_every_steps_choices_and_its_hard_program(dev):
    batch = tasks.table_questions(7, rows=6, columns=3, kinds=["sum", "count_between", "sum_where_greater"],
                                  generator=gen(30), device=dev)
    net = _model(dev=dev)
    out = net(batch)
    B, M, C, T, O = 7, 6, 3, 5, len(OPS)
    assert out.scalar.shape == (B,) and out.lookup.shape == (B, M, C)
    assert out.alpha_op.shape == (B, T, O) and out.alpha_col.shape == (B, T, C)
    assert out.beta.shape == (B, 2, 2) and out.pivots.shape == (B, 2)
    assert out.row_select.shape == (B, T, M) and out.scalars.shape == (B, T)
    torch.testing.assert_close(out.alpha_op.sum(-1), torch.ones(B, T, device=dev))
    torch.testing.assert_close(out.alpha_col.sum(-1), torch.ones(B, T, device=dev))
    has = batch.number_mask.any(1)
    assert has.any() and (~has).any() and (batch.number_mask.sum(1) == 2).any()
    torch.testing.assert_close(out.beta.sum(-1)[has], torch.ones(int(has.sum()), 2, device=dev))
    assert (out.beta[~has] == 0).all() and (out.pivots[~has] == 0).all()
    torch.testing.assert_close(out.scalars[:, -1], out.scalar)
    hard = net(batch, hard=True)
    ops, cols = P.chosen_programs(out)
    assert set(hard.alpha_op.unique().tolist()) <= {0.0, 1.0} and set(hard.alpha_col.unique().tolist()) <= {0.0, 1.0}
    hard_ops, hard_cols = P.chosen_programs(hard)
    assert torch.equal(hard_ops, ops) and torch.equal(hard_cols, cols)  # the soft run's argmax at every step
    # and that program, run by operation_step with one-hot choices, gives the hard answers
    state = P.initial_program_state(batch.tables)
    for t in range(T):
        state = P.operation_step(state, hard.alpha_op[:, t], hard.alpha_col[:, t], batch.tables, hard.pivots)
    torch.testing.assert_close(state.scalars[:, 0], hard.scalar)
    torch.testing.assert_close(state.lookup, hard.lookup)
    chosen = out.beta.argmax(-1)  # the hard pivot: the number the soft attention prefers
    assert torch.equal(hard.beta.argmax(-1)[has], chosen[has])
    torch.testing.assert_close(hard.pivots[has], batch.numbers[has].gather(1, chosen[has]))


def test_the_gradient_reaches_every_part_of_the_model():
    batch = tasks.table_questions(32, columns=2, generator=gen(31))
    net = _model()
    P.programmer_loss(net(batch), batch).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("width", [0.0, 1.0])
def test_the_pivot_attention_learns_only_with_a_comparison_width(width):
    batch = tasks.table_questions(32, kinds=["count_between", "difference"], generator=gen(34))
    torch.manual_seed(0)
    net = P.NeuralProgrammer(len(tasks.table_vocab()), d=16, width=width)
    out = net(batch)
    out.beta.retain_grad()
    P.programmer_loss(out, batch).backward()
    if width == 0:  # the paper's step functions: nothing reaches beta
        assert out.beta.grad is None or (out.beta.grad == 0).all()
    else:
        assert out.beta.grad.abs().sum() > 0


def test_the_loss_is_huber_on_scalars_and_weighted_cross_entropy_on_lookups():
    batch = tasks.table_questions(6, rows=4, columns=2, kinds=["sum", "print_greater"], generator=gen(32))
    net = _model()
    with torch.no_grad():
        out = net(batch)
    delta, lam = 3.0, 20.0
    loss = P.programmer_loss(out, batch, delta=delta, lookup_weight=lam)
    total = 0.0
    for b in range(6):
        if batch.is_scalar[b]:
            a = abs(float(out.scalar[b]) - float(batch.scalar_answers[b]))
            total += 0.5 * a * a if a <= delta else delta * a - 0.5 * delta * delta
        else:
            p, y = out.lookup[b].flatten().tolist(), batch.lookup_answers[b].flatten().tolist()
            ce = [-(t * math.log(q + 1e-6) + (1 - t) * math.log(1 - q + 1e-6)) for q, t in zip(p, y)]
            total += lam * sum(ce) / len(ce)
    assert batch.is_scalar.any() and (~batch.is_scalar).any()
    assert math.isclose(float(loss), total / 6, rel_tol=1e-5)
    # empty_lookup: the scalar questions' lookups are scored too, against no cells
    extra = 0.0
    for b in range(6):
        if batch.is_scalar[b]:
            p = out.lookup[b].flatten().tolist()
            extra += lam * sum(-math.log(1 - q + 1e-6) for q in p) / len(p)
    both = P.programmer_loss(out, batch, delta=delta, lookup_weight=lam, empty_lookup=True)
    assert extra > 0 and math.isclose(float(both), (total + extra) / 6, rel_tol=1e-5)


def test_the_answer_rule_reads_the_last_steps_assign_weight():
    batch = tasks.table_questions(2, rows=3, columns=1, kinds=["print_greater"], generator=gen(33))
    batch = batch._replace(is_scalar=torch.tensor([True, False]), scalar_answers=torch.tensor([7.0, 0.0]),
                           lookup_answers=torch.tensor([[[0.0], [0.0], [0.0]], [[1.0], [0.0], [1.0]]]))
    alpha = torch.zeros(2, 1, len(OPS))
    alpha[0, 0, OPS.index("sum")] = 1.0
    alpha[1, 0, OPS.index("assign")] = 0.6
    out = P.ProgramOutput(torch.tensor([7.3, 0.0]), torch.tensor([[[0.9], [0.9], [0.9]], [[0.55], [0.2], [0.8]]]),
                          alpha, torch.ones(2, 1, 1), torch.zeros(2, 2, 2), torch.zeros(2, 2), torch.zeros(2, 1, 3),
                          torch.zeros(2, 1))
    assert P.answers_correct(out, batch).tolist() == [True, True]
    out2 = out._replace(scalar=torch.tensor([7.6, 0.0]), lookup=out.lookup.clone())
    out2.lookup[1, 1, 0] = 0.51  # one cell too many
    assert P.answers_correct(out2, batch).tolist() == [False, False]
    alpha3 = alpha.clone()
    alpha3[1, 0, OPS.index("assign")] = 0.4  # the model would answer with its scalar
    assert P.answers_correct(out._replace(alpha_op=alpha3), batch).tolist() == [True, False]


def test_gradient_noise_is_annealed_and_zero_without_eta():
    w = torch.nn.Parameter(torch.zeros(200_000))
    w.grad = torch.zeros_like(w)
    assert P.add_gradient_noise([w], step=10, eta=0.0) == 0.0 and (w.grad == 0).all()
    std = P.add_gradient_noise([w], step=99, eta=0.3, generator=gen(0))
    assert math.isclose(std, math.sqrt(0.3 / 100 ** 0.55))
    assert abs(float(w.grad.std()) / std - 1) < 0.01 and abs(float(w.grad.mean())) < 0.01 * std
    assert P.add_gradient_noise([w], step=999, eta=0.3) < std  # smaller later
    with pytest.raises(ValueError, match="eta"):
        P.add_gradient_noise([w], step=1, eta=-1.0)


def test_bad_inputs_say_what_was_expected():
    table, state, piv = _random_state(2, 4, 3, seed=40)
    ops = _one_hot(0, len(OPS), 2)
    with pytest.raises(ValueError, match=r"alpha_op must have shape \(2, 11\)"):
        P.operation_step(state, ops[:, :5], _one_hot(0, 3, 2), table, piv)
    with pytest.raises(ValueError, match=r"alpha_col must have shape \(2, 3\)"):
        P.operation_step(state, ops, _one_hot(0, 2, 2), table, piv)
    with pytest.raises(ValueError, match="pivots"):
        P.operation_step(state, ops, _one_hot(0, 3, 2), table, piv[:, :1])
    with pytest.raises(ValueError, match=r"table must be a float tensor \(B, M, C\)"):
        P.operation_step(state, ops, _one_hot(0, 3, 2), table[0], piv)
    with pytest.raises(ValueError, match="float64"):
        P.operation_step(state, ops.float(), _one_hot(0, 3, 2), table, piv)
    with pytest.raises(ValueError, match="state.row_select must have shape"):
        P.operation_step(state._replace(row_select=state.row_select[:, :2]), ops, _one_hot(0, 3, 2), table, piv)
    net = _model()
    batch = tasks.table_questions(3, columns=2, generator=gen(41))
    with pytest.raises(ValueError, match="columns must be"):
        net(batch._replace(columns=batch.columns[:, :1]))
    with pytest.raises(ValueError, match="questions must be long word ids"):
        net(batch._replace(questions=batch.questions.float()))
    with pytest.raises(ValueError, match="lengths must be"):
        net(batch._replace(lengths=batch.lengths + 50))
    with pytest.raises(ValueError, match="numbers, number_positions and number_mask"):
        net(batch._replace(number_mask=batch.number_mask[:, :1]))
    with pytest.raises(ValueError, match="steps"):
        P.NeuralProgrammer(10, steps=0)
    with pytest.raises(ValueError, match="width must be a finite number"):
        P.NeuralProgrammer(10, width=-1.0)
    with pytest.raises(ValueError, match="lengths must be long"):
        net(batch._replace(lengths=batch.lengths.float()))
    with pytest.raises(ValueError, match="number_mask must be bool"):
        net(batch._replace(number_mask=batch.number_mask.float()))
    with pytest.raises(ValueError, match="position must be in 1"):
        net(batch._replace(number_positions=batch.number_positions + 40,
                           number_mask=torch.ones_like(batch.number_mask)))
    with pytest.raises(ValueError, match="tables must be torch.float32"):
        net(batch._replace(tables=batch.tables.double()))
    out = net(batch)
    with pytest.raises(ValueError, match=r"scalar_answers must have shape \(3,\)"):
        P.programmer_loss(out, batch._replace(scalar_answers=batch.scalar_answers[:, None]))
    with pytest.raises(ValueError, match="lookup_answers must have shape"):
        P.answers_correct(out, batch._replace(lookup_answers=batch.lookup_answers[:, :1]))


def test_it_learns_to_write_the_programs_of_three_kinds():
    """From the answers alone, in 400 steps: sum, sum of the values greater than n, print them."""
    kinds = ["sum", "sum_greater", "print_greater"]
    net = _model(d=32, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = gen(50)
    for step in range(400):
        batch = tasks.table_questions(64, kinds=kinds, generator=g)
        loss = P.programmer_loss(net(batch), batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    test = tasks.table_questions(600, kinds=kinds, generator=gen(51))
    with torch.no_grad():
        right = P.answers_correct(net(test, hard=True), test)
        ops, _ = P.chosen_programs(net(test, hard=True))
    assert right.float().mean() > 0.95
    for kind, last in (("sum", "sum"), ("sum_greater", "sum"), ("print_greater", "assign")):
        at = test.kinds == KINDS.index(kind)
        assert (ops[at, -1] == OPS.index(last)).float().mean() > 0.95, kind
    greater = test.kinds == KINDS.index("sum_greater")
    assert (ops[greater, :-1] == OPS.index("greater")).any(1).float().mean() > 0.95  # it selects rows first


def test_a_comparison_width_keeps_the_values_and_gives_the_pivot_a_gradient():
    B, M, C = 3, 6, 2
    table, state, piv = _random_state(B, M, C, seed=60)
    alpha_op = torch.softmax(torch.randn(B, len(OPS), generator=gen(61), dtype=torch.float64), -1)
    alpha_col = torch.softmax(torch.randn(B, C, generator=gen(62), dtype=torch.float64), -1)
    grads = {}
    for width in (0.0, 1.0):
        p = (piv + 0.3).requires_grad_()
        new = P.operation_step(state, alpha_op, alpha_col, table, p, width=width)
        total = new.row_select.sum()
        grad = torch.autograd.grad(total, p)[0] if total.requires_grad else None
        grads[width] = (new.row_select.detach(), grad)
    assert torch.equal(grads[0.0][0], grads[1.0][0])  # the same values, exactly
    assert grads[0.0][1] is None  # the paper's step functions: no gradient reaches the pivot
    assert (grads[1.0][1].abs() > 0).all()
    # greater's pivot: raising it selects fewer rows, so the selection's gradient is negative
    assert (grads[1.0][1][:, 0] < 0).all() and (grads[1.0][1][:, 1] > 0).all()

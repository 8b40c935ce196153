"""Homework 2 (LSTM, GRU, CIFG, the counting cell, CTC): its checks, and its grading end to end.

The first part calls the ``seqmem.grading`` checks directly (fast): the source notebook's answers
pass, and wrong conventions, look-alike objects and calls to the references fail. The second part
(``TestPipeline``) runs nbgrader's own commands with a real gradebook on canned submissions, as
tests/test_grading.py does for homework 1.
"""
import csv
import json
import math
import subprocess
import sys
import textwrap

import numpy as np

import nbformat
import pytest
import torch
from torch.nn import functional as F

import seqmem
from conftest import ROOT
from grading_helpers import (assert_feedback_hides_hidden_tests, autograde_alone, build_course,
                             committed_release, generated_release, nbgrader, scores)
from seqmem import data, grading  # noqa: F401 (seqmem.data: the library's counting cell)

HW = "hw2-lstm-gru"
POINTS = {"test_lstm_cell_forward": 2, "test_gru_cell_forward": 2, "test_cifg_cell_forward": 1,
          "test_counting_lstm": 2, "test_ctc_nll": 3}
ITEMS = [gid.removeprefix("test_") for gid in POINTS]


# ------------------------------------------------------------------ the checks, called directly

@pytest.fixture(scope="module")
def source():
    """The source notebook's answers: its solution cells run in one namespace."""
    nb = nbformat.read(ROOT / "solutions" / HW / f"{HW}.ipynb", as_version=4)
    namespace = {}
    exec("import itertools, math\nimport torch\nimport seqmem", namespace)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") in ITEMS:
            exec(cell.source, namespace)
    return namespace


CHECKS = {"lstm_cell_forward": grading.check_lstm_cell_forward,
          "gru_cell_forward": grading.check_gru_cell_forward,
          "cifg_cell_forward": grading.check_cifg_cell_forward,
          "counting_lstm": grading.check_counting_lstm,
          "ctc_nll": grading.check_ctc_nll}


@pytest.mark.parametrize("item", ITEMS)
def test_the_source_answers_pass(source, item):
    CHECKS[item](source[item])


def _lstm_gates_ifog(x, h, c, W_ih, W_hh, b_ih, b_hh):
    z_i, z_f, z_o, z_g = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)  # o and g swapped
    c_next = torch.sigmoid(z_f) * c + torch.sigmoid(z_i) * torch.tanh(z_g)
    return torch.sigmoid(z_o) * torch.tanh(c_next), c_next


def _gru_reset_before(x, h, W_ih, W_hh, b_ih, b_hh):
    """Cho et al.'s GRU: the reset gate applied to h before the product W_hn h."""
    H = h.shape[1]
    a = x @ W_ih.T + b_ih  # (B, 3H)
    r = torch.sigmoid(a[:, :H] + h @ W_hh[:H].T + b_hh[:H])
    z = torch.sigmoid(a[:, H:2 * H] + h @ W_hh[H:2 * H].T + b_hh[H:2 * H])
    n = torch.tanh(a[:, 2 * H:] + (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:])
    return (1 - z) * n + z * h


def _cifg_forget_equals_input(x, h, c, W_ih, W_hh, b_ih, b_hh):
    z_i, z_g, z_o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(3, dim=1)
    i = torch.sigmoid(z_i)
    c_next = i * c + i * torch.tanh(z_g)
    return torch.sigmoid(z_o) * torch.tanh(c_next), c_next


def _ctc_skips_between_equal_labels(source):
    def ctc_nll(log_probs, target):
        T, S = log_probs.shape[0], len(target)
        ext = target.new_zeros(2 * S + 1)
        ext[1::2] = target
        alpha = torch.full((2 * S + 1,), -math.inf, dtype=log_probs.dtype)
        alpha[:2] = log_probs[0, ext[:2]]
        for t in range(1, T):
            prev = [alpha] + [torch.cat([alpha.new_full((k,), -math.inf), alpha[:-k]]) for k in (1, 2)]
            prev[2] = torch.where(ext != 0, prev[2], -math.inf)  # forgets l'_s != l'_{s-2}
            alpha = torch.logsumexp(torch.stack(prev), 0) + log_probs[t, ext]
        return -torch.logsumexp(alpha[-2:], 0)
    return ctc_nll


class _Anything(torch.Tensor):
    def __eq__(self, other):
        return True


def _lecture_weights(forget_reads_x2=True):
    """The lecture's weights (rows i, f, g, o); without x2 in the forget gate, no reset."""
    W = torch.tensor([[0.0, 100, 0], [0, 100 if forget_reads_x2 else 0, 0], [1, 0, 0], [0, 0, 100]])
    return W, torch.tensor([-10.0, 10, 0, -10])


def _then(item, change):
    """An answer that runs the source's answer for ``item`` and changes what it returns."""
    return lambda s: lambda *args: change(s[item](*args), *args)


def _weights(change):
    """An answer to the counting item: the lecture's weights, changed."""
    return lambda s: lambda: change(*_lecture_weights())


WRONG = {  # case -> (item, answer made from the source's namespace, a phrase of the message)
    "lstm gates i, f, o, g": ("lstm_cell_forward", lambda s: _lstm_gates_ifog, "differs from the reference"),
    "lstm returns a list": ("lstm_cell_forward", _then("lstm_cell_forward", lambda out, *a: list(out)), "tuple"),
    "lstm always float32": ("lstm_cell_forward",
                            _then("lstm_cell_forward", lambda out, *a: tuple(t.float() for t in out)), "dtype"),
    "lstm always equal": ("lstm_cell_forward",
                          _then("lstm_cell_forward", lambda out, *a: tuple(t.as_subclass(_Anything) for t in out)),
                          "torch.Tensor"),
    "gru reset before the product": ("gru_cell_forward", lambda s: _gru_reset_before, "differs"),
    "gru (h, h)": ("gru_cell_forward", _then("gru_cell_forward", lambda out, *a: (out, out)), "torch.Tensor"),
    "cifg f = i": ("cifg_cell_forward", lambda s: _cifg_forget_equals_input, "differs"),
    "cifg with four blocks": ("cifg_cell_forward", lambda s: s["lstm_cell_forward"], "raised"),
    "counting never resets": ("counting_lstm", lambda s: lambda: _lecture_weights(forget_reads_x2=False), "counter"),
    "counting weak gates": ("counting_lstm", _weights(lambda W, b: (W / 20, b / 20)), "counter"),
    "counting W transposed": ("counting_lstm", _weights(lambda W, b: (W.T, b)), "shape (4, 3)"),
    "counting always equal": ("counting_lstm", _weights(lambda W, b: (W.as_subclass(_Anything), b)), "torch.Tensor"),
    "counting integer weights": ("counting_lstm", _weights(lambda W, b: (W.long(), b.long())), "floating"),
    "ctc skips between equal labels": ("ctc_nll", _ctc_skips_between_equal_labels, "differs"),
    "ctc nan when impossible": ("ctc_nll", _then("ctc_nll", lambda out, *a: torch.nan_to_num(out, posinf=math.nan)),
                                "differs"),
    "ctc returns a float": ("ctc_nll", _then("ctc_nll", lambda out, *a: float(out)), "got float"),
    "ctc always float64": ("ctc_nll", lambda s: lambda lp, t: s["ctc_nll"](lp.double(), t), "dtype"),
    "ctc always equal": ("ctc_nll", _then("ctc_nll", lambda out, *a: out.as_subclass(_Anything)), "torch.Tensor"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(source, case):
    item, make, phrase = WRONG[case]
    with pytest.raises(AssertionError, match=item) as failure:
        CHECKS[item](make(source))
    assert phrase in str(failure.value)


def _cells():
    from seqmem import ctc

    def lstm_cell_module(x, h, c, W_ih, W_hh, b_ih, b_hh):
        cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).to(x.dtype)
        with torch.no_grad():
            for p, w in zip(cell.parameters(), (W_ih, W_hh, b_ih, b_hh)):
                p.copy_(w)
        return tuple(t.detach() for t in cell(x, (h, c)))

    def gru_cell_module(x, h, W_ih, W_hh, b_ih, b_hh):
        cell = torch.nn.GRUCell(x.shape[1], h.shape[1]).to(x.dtype)
        with torch.no_grad():
            for p, w in zip(cell.parameters(), (W_ih, W_hh, b_ih, b_hh)):
                p.copy_(w)
        return cell(x, h).detach()

    def cifg_by_lstm(x, h, c, W_ih, W_hh, b_ih, b_hh):
        def four(w):
            w_i, w_g, w_o = w.chunk(3, dim=0)
            return torch.cat([w_i, -w_i, w_g, w_o])
        return torch.lstm_cell(x, (h, c), four(W_ih), four(W_hh), four(b_ih), four(b_hh))

    def library_lstm(fused, variant="NP"):
        def lstm_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
            cell = seqmem.LSTMCell(x.shape[1], h.shape[1], variant=variant, fused=fused).to(x.dtype)
            with torch.no_grad():
                for p, w in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                (W_ih, W_hh, b_ih, b_hh)):
                    p.copy_(w)
                if variant == "CIFG":
                    cell.peephole.zero_()  # the homework's CIFG has no peepholes
            state, _ = cell(seqmem.LSTMState(h, c), x)
            return state.h.detach(), state.c.detach()
        return lstm_cell_forward

    def library_layer(layer, x, state, weights):
        module = layer(x.shape[1], state[0].shape[1]).to(x.dtype)
        with torch.no_grad():
            for p, w in zip(module.parameters(), weights):
                p.copy_(w)
        return module(x[None], tuple(s[None] for s in state) if len(state) > 1 else state[0][None])[1]

    def ctc_by(loss):
        return lambda lp, t: loss(lp[:, None], t[None], [lp.shape[0]], [len(t)], reduction="sum")

    return {
        "torch.nn.LSTMCell": ("lstm_cell_forward", lstm_cell_module),
        "torch.lstm_cell": ("lstm_cell_forward", lambda x, h, c, *w: torch.lstm_cell(x, (h, c), *w)),
        "torch._VF.lstm_cell": ("lstm_cell_forward", lambda x, h, c, *w: torch._VF.lstm_cell(x, (h, c), *w)),
        "seqmem.LSTMCell (fused)": ("lstm_cell_forward", library_lstm(True)),
        "seqmem.LSTMCell": ("lstm_cell_forward", library_lstm(False)),
        "seqmem.lstm.lstm_step": ("lstm_cell_forward", lambda x, h, c, *w: seqmem.lstm.lstm_step(
            x, (h, c), dict(zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), w)))[0]),
        "seqmem.LSTM": ("lstm_cell_forward", lambda x, h, c, *w: tuple(
            s[0].detach() for s in library_layer(seqmem.LSTM, x, (h, c), w))),
        "torch.nn.LSTM": ("lstm_cell_forward", lambda x, h, c, *w: tuple(
            s[0].detach() for s in library_layer(torch.nn.LSTM, x, (h, c), w))),
        "torch.nn.GRUCell": ("gru_cell_forward", gru_cell_module),
        "seqmem.GRUCell": ("gru_cell_forward", lambda x, h, *w: library_layer(
            lambda i, k: _Cell(seqmem.GRUCell(i, k)), x, (h,), w)[0].detach()),
        "seqmem.gru.gru_step": ("gru_cell_forward", lambda x, h, *w: seqmem.gru.gru_step(
            x, h, dict(zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), w)))[0]),
        "seqmem.GRU": ("gru_cell_forward", lambda x, h, *w: library_layer(seqmem.GRU, x, (h,), w)[0].detach()),
        "seqmem.LSTMCell CIFG": ("cifg_cell_forward", library_lstm(False, "CIFG")),
        "seqmem.data.counting_cell_weights": ("counting_lstm", lambda: tuple(
            seqmem.data.counting_cell_weights()[k] for k in ("weight_ih", "bias_ih"))),
        "seqmem.data.counting_cell": ("counting_lstm", lambda: tuple(
            p.detach() for p in (seqmem.data.counting_cell().weight_ih, seqmem.data.counting_cell().bias_ih))),
        "torch.gru_cell": ("gru_cell_forward", lambda *a: torch.gru_cell(*a)),
        "cifg by torch.lstm_cell": ("cifg_cell_forward", cifg_by_lstm),
        "F.ctc_loss": ("ctc_nll", ctc_by(F.ctc_loss)),
        "torch.nn.CTCLoss": ("ctc_nll", ctc_by(lambda *a, reduction: torch.nn.CTCLoss(reduction=reduction)(*a))),
        "torch.ctc_loss": ("ctc_nll", ctc_by(lambda *a, reduction: torch.ctc_loss(*a, 0, 2, False))),  # 2: sum
        "seqmem.ctc.ctc_loss": ("ctc_nll", ctc_by(ctc.ctc_loss)),
        "seqmem.ctc._log_likelihood": ("ctc_nll", lambda lp, t: -ctc._log_likelihood(
            lp[:, None], t[None], torch.tensor([lp.shape[0]]), torch.tensor([len(t)]), 0)[0]),
    }


class _Cell(torch.nn.Module):
    """A library cell called like a layer on a one-step sequence: (1, B, I), (1, B, H) -> (y, h)."""

    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, xs, h):
        h_next, y = self.cell(h[0], xs[0])
        return y[None], h_next[None]


CALLS = list(_cells())


@pytest.mark.parametrize("reference", CALLS)
def test_calling_a_reference_is_blocked(reference):
    item, answer = _cells()[reference]
    with pytest.raises(grading.ReferenceBlocked, match="write it yourself"):
        CHECKS[item](answer)
    # and afterwards every reference works again
    assert torch.lstm_cell(torch.zeros(1, 1), (torch.zeros(1, 1),) * 2, *(torch.zeros(4, 1),) * 2)[0].shape == (1, 1)
    lp = torch.zeros(2, 1, 2).log_softmax(-1)
    torch.testing.assert_close(F.ctc_loss(lp, torch.tensor([[1]]), [2], [1], reduction="sum"),
                               seqmem.ctc.ctc_loss(lp, torch.tensor([[1]]), [2], [1], reduction="sum"))


@pytest.mark.parametrize("reference", CALLS)
def test_the_blocked_calls_would_otherwise_be_right(reference, monkeypatch):
    # so the only reason they fail is the blocking
    item, answer = _cells()[reference]
    monkeypatch.setattr(grading, "_references", lambda item: [])
    CHECKS[item](answer)


def test_a_blocked_function_raises_reference_blocked_from_any_module():
    # the swapped-in code finds ReferenceBlocked although the blocked function's module lacks it
    from seqmem import rnn

    with grading.blocked(rnn.rnn_step, F.ctc_loss):
        for call in (lambda: rnn.rnn_step(None, None, None, None), lambda: F.ctc_loss(None, None, None, None)):
            with pytest.raises(grading.ReferenceBlocked):
                call()
    one, zero = torch.ones(1, 1), torch.zeros(1, 1)
    assert rnn.rnn_step(one, zero, one, one).item() == pytest.approx(math.tanh(1))


def _skip_rnn(x, h, W_ih, W_hh, b_ih, b_hh):
    cell = seqmem.irnn.SkipRNNCell(x.shape[1], h.shape[1], dtype=x.dtype)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih), cell.weight_hh.copy_(W_hh), cell.bias.copy_(b_ih + b_hh)
    return (cell(h, x)[0] - h).detach()  # s + tanh(z), then s taken away


def _nested_gates(x, h, c, *w):
    i, f, g, o = seqmem.nested.lstm_gates(x, h, *w)
    c_next = f * c + i * g
    return o * torch.tanh(c_next), c_next


def _quantizable_lstm(x, h, c, W_ih, W_hh, b_ih, b_hh):
    cell = torch.ao.nn.quantizable.LSTMCell(x.shape[1], h.shape[1]).to(x.dtype)
    with torch.no_grad():
        for p, w in ((cell.igates.weight, W_ih), (cell.igates.bias, b_ih), (cell.hgates.weight, W_hh),
                     (cell.hgates.bias, b_hh)):
            p.copy_(w)
    return tuple(t.detach() for t in cell(x, (h, c)))


ONE_LINERS = {  # each computes the item's answer with a reference; all must be blocked
    "torch._VF.rnn_tanh_cell": ("rnn_cell_forward", lambda *a: torch._VF.rnn_tanh_cell(*a)),
    "torch.ops.aten.rnn_tanh_cell": ("rnn_cell_forward", lambda *a: torch.ops.aten.rnn_tanh_cell(*a)),
    "torch.ops.aten.rnn_tanh_cell.default": ("rnn_cell_forward",
                                             lambda *a: torch.ops.aten.rnn_tanh_cell.default(*a)),
    "torch._VF.rnn_tanh": ("rnn_cell_forward", lambda x, h, *w: torch._VF.rnn_tanh(
        x[None], h[None], list(w), True, 1, 0., False, False, False)[1][0]),
    "torch's rnn_tanh decomposition": ("rnn_cell_forward", lambda x, h, *w: torch._decomp.decomposition_table[
        torch.ops.aten.rnn_tanh.input](x[None], h[None], list(w), True, 1, 0., False, False, False)[1][0]),
    "seqmem.irnn.SkipRNNCell": ("rnn_cell_forward", _skip_rnn),
    "torch.ops.aten.lstm_cell": ("lstm_cell_forward", lambda x, h, c, *w: torch.ops.aten.lstm_cell(x, [h, c], *w)),
    "torch._C._VariableFunctions.lstm_cell": ("lstm_cell_forward", lambda x, h, c, *w: tuple(
        torch._C._VariableFunctions.lstm_cell(x, [h, c], *w))),
    "seqmem.nested.lstm_gates": ("lstm_cell_forward", _nested_gates),
    "torch.ao.nn.quantizable.LSTMCell": ("lstm_cell_forward", _quantizable_lstm),
    "torch._decomp lstm_cell": ("lstm_cell_forward", lambda x, h, c, W_ih, W_hh, b_ih, b_hh: tuple(
        torch._decomp.decompositions.lstm_cell(x @ W_ih.T + b_ih, h, c, W_hh, b_hh, None, 1))),
    "torch.ops.aten.gru_cell": ("gru_cell_forward", lambda *a: torch.ops.aten.gru_cell(*a)),
    "torch._C._VariableFunctions.gru_cell": ("gru_cell_forward", lambda *a: torch._C._VariableFunctions.gru_cell(*a)),
    "torch.ops.aten.ctc_loss": ("ctc_nll", lambda lp, t: torch.ops.aten.ctc_loss(
        lp[:, None], t[None], [lp.shape[0]], [len(t)], 0, 0)[0]),
    "torch._ctc_loss": ("ctc_nll", lambda lp, t: torch._ctc_loss(lp[:, None], t[None], [lp.shape[0]], [len(t)])[0][0]),
    "torch.jit.script": ("ctc_nll", lambda lp, t: torch.jit.script(F.ctc_loss)(
        lp[:, None], t[None], [lp.shape[0]], [len(t)], reduction="sum")),
}
HW1_CHECKS = {"rnn_cell_forward": grading.check_rnn_cell_forward, "bptt_backward": grading.check_bptt_backward,
              "clip_grad_norm": grading.check_clip_grad_norm}


@pytest.mark.parametrize("reference", list(ONE_LINERS))
def test_one_liners_that_call_a_reference_are_blocked(reference):
    item, answer = ONE_LINERS[reference]
    with pytest.raises(grading.ReferenceBlocked, match=f"^{item}: .* is not available while this item is graded"):
        {**CHECKS, **HW1_CHECKS}[item](answer)


@pytest.mark.parametrize("reference", [r for r in ONE_LINERS if r != "torch.jit.script"])
def test_the_one_liners_would_otherwise_be_right(reference, monkeypatch):
    item, answer = ONE_LINERS[reference]
    monkeypatch.setattr(grading, "_references", lambda item: [])
    {**CHECKS, **HW1_CHECKS}[item](answer)


def test_the_message_names_the_item_and_the_reference():
    item, answer = _cells()["torch.nn.LSTMCell"]
    with pytest.raises(grading.ReferenceBlocked) as blocked:
        CHECKS[item](answer)
    assert str(blocked.value) == ("lstm_cell_forward: torch.nn.LSTMCell.forward is not available while this "
                                  "item is graded: write it yourself from the equations")
    with pytest.raises(grading.ReferenceBlocked, match=r"^gru_cell_forward: torch's gru_cell \("):
        CHECKS["gru_cell_forward"](lambda *a: torch.ops.aten.gru_cell(*a))
    with pytest.raises(grading.ReferenceBlocked, match=r"^ctc_nll: seqmem\.ctc\.ctc_loss is not available"):
        CHECKS["ctc_nll"](_cells()["seqmem.ctc.ctc_loss"][1])


def _steals(*names):
    """An answer that reads the expected answer out of the grader's frames."""
    def answer(*args):
        frame = sys._getframe(1)
        while frame is not None:
            if all(n in frame.f_locals for n in names):
                found = tuple(frame.f_locals[n] for n in names)
                return found[0] if len(found) == 1 else found
            frame = frame.f_back
        raise LookupError("nothing to steal")
    return answer


@pytest.mark.parametrize("item, names", [("rnn_cell_forward", ("expected",)), ("gru_cell_forward", ("expected",)),
                                         ("lstm_cell_forward", ("expected_h", "expected_c")),
                                         ("ctc_nll", ("expected",)), ("bptt_backward", ("expected",)),
                                         ("clip_grad_norm", ("expected",))])
def test_the_expected_answer_cannot_be_read_from_the_grader_frame(item, names):
    with pytest.raises(AssertionError, match=item):
        {**CHECKS, **HW1_CHECKS}[item](_steals(*names))


def test_other_items_references_stay_usable_as_tools(source):
    # hw2 suggests trying the counting weights with run_counting_cell (seqmem.LSTMCell inside)
    xs = grading.counting_sequences(torch.Generator().manual_seed(1), 6, 2)

    def counting_lstm():
        W, b = source["counting_lstm"]()
        grading.run_counting_cell(W.double(), b.double(), xs)
        return W, b
    grading.check_counting_lstm(counting_lstm)

    def lstm_cell_forward(*args):  # a GRU and a CTC along the way do no harm
        torch.gru_cell(args[0], args[1], *(torch.zeros(3 * args[1].shape[1], n, dtype=args[0].dtype)
                                           for n in (args[0].shape[1], args[1].shape[1])))
        return source["lstm_cell_forward"](*args)
    grading.check_lstm_cell_forward(lstm_cell_forward)


def test_bptt_forward_stays_a_tool_for_the_backward_pass():
    def bptt_backward(params, cache, dhs):
        xs, hs = cache["xs"], cache["h"]
        _, again = seqmem.bptt.forward(params, xs, hs[0])  # the given tool
        hs = again["h"]
        g = {k: np.zeros_like(v) for k, v in params.items()}
        carry = np.zeros_like(hs[0])
        for t in reversed(range(1, len(hs))):
            d = (dhs[t - 1] + carry) * (1 - hs[t] * hs[t])
            g["W_xh"] += d.T @ xs[t - 1]
            g["W_hh"] += d.T @ hs[t - 1]
            g["b"] += d.sum(0)
            carry = d @ params["W_hh"]
        g["h0"] = carry
        return g
    grading.check_bptt_backward(bptt_backward)
    with pytest.raises(grading.ReferenceBlocked, match="^bptt_backward: seqmem.bptt.backward"):
        grading.check_bptt_backward(lambda p, c, d: seqmem.bptt.backward(p, c, d))


def test_hw1_checks_do_not_import_hw2_modules():
    code = textwrap.dedent("""
        import sys, types
        package = types.ModuleType("seqmem")  # the package without its __init__, which imports all
        package.__path__ = [sys.argv[1]]
        sys.modules["seqmem"] = package
        import torch
        from seqmem import grading
        grading.check_rnn_cell_forward(lambda x, h, W_ih, W_hh, b_ih, b_hh: torch.tanh(
            x @ W_ih.T + b_ih + h @ W_hh.T + b_hh))
        for item in ("rnn_cell_forward", "bptt_backward", "clip_grad_norm"):
            grading._references(item)
        loaded = sorted(m for m in ("seqmem.data", "seqmem.ctc", "seqmem.gru", "seqmem.lstm") if m in sys.modules)
        assert not loaded, loaded
    """)
    result = subprocess.run([sys.executable, "-c", code, str(ROOT / "lib" / "seqmem")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_failure_shows_expected_and_got():
    small = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(AssertionError, match=r"expected \[1\.0, 2\.0, 3\.0\]\ngot      \[1\.0, 2\.5, 3\.0\]"):
        grading._close("item", torch.tensor([1.0, 2.5, 3.0]), small)
    big = torch.zeros(3, 4, dtype=torch.float64)
    wrong = big.clone()
    wrong[1, 2] = 0.5
    with pytest.raises(AssertionError, match=r"at index \(1, 2\): expected 0\.0, got 0\.5"):
        grading._close("item", wrong, big)
    with pytest.raises(AssertionError, match=r"at index \(0,\): expected inf, got nan"):
        grading._close("item", torch.tensor([math.nan] * 9), torch.tensor([math.inf] * 9))


def test_the_lecture_example_and_the_counter_agree():
    xs = torch.tensor([[1, 0, 0], [3, 1, 0], [2, 0, 0], [4, 1, 0], [2, 0, 0],
                       [1, 0, 1], [3, -1, 0], [6, 1, 0], [1, 0, 1]], dtype=torch.float64)[:, None]
    expected = torch.tensor([0, 0, 0, 0, 0, 7, 0, 0, 6], dtype=torch.float64)[:, None]
    assert torch.equal(grading.counter_outputs(xs), expected)
    W, b = _lecture_weights()
    torch.testing.assert_close(grading.run_counting_cell(W.double(), b.double(), xs), expected, rtol=0, atol=0.01)


def test_the_hidden_cases_cover_the_edges():
    cases = list(grading._ctc_cases(317, 10))
    shortest = [len(t) + int((t[1:] == t[:-1]).sum()) for _, t in cases]
    lengths = [lp.shape[0] for lp, _ in cases]
    assert any(T < s for T, s in zip(lengths, shortest)), "an impossible case"
    assert any(T == s and (t[1:] == t[:-1]).any() for T, s, (_, t) in zip(lengths, shortest, cases))
    assert {lp.dtype for lp, _ in cases} == {torch.float32, torch.float64}
    nlls = [grading._ctc_reference(lp, t) for lp, t in cases]
    assert any(math.isinf(v) for v in nlls) and any(math.isfinite(v) for v in nlls)
    g = torch.Generator().manual_seed(0)
    xs = grading.counting_sequences(g, 400, 8)
    assert set(xs[..., 1].unique().tolist()) == {-1.0, 0.0, 1.0} and set(xs[..., 2].unique().tolist()) == {0.0, 1.0}


# ------------------------------------------------------------------ nbgrader, end to end

RIGHT = {
    "lstm_cell_forward": '''
def lstm_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    a = torch.addmm(b_ih, x, W_ih.t()) + torch.addmm(b_hh, h, W_hh.t())
    i, f, o = (torch.sigmoid(a[:, k * H:(k + 1) * H]) for k in (0, 1, 3))
    c2 = f * c + i * torch.tanh(a[:, 2 * H:3 * H])
    return o * torch.tanh(c2), c2
''',
    "gru_cell_forward": '''
def gru_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    gx, gh = torch.addmm(b_ih, x, W_ih.t()), torch.addmm(b_hh, h, W_hh.t())
    H = h.shape[1]
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    u = torch.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    return torch.lerp(torch.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:]), h, u)
''',
    "cifg_cell_forward": '''
def cifg_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    a = torch.addmm(b_ih, x, W_ih.t()) + torch.addmm(b_hh, h, W_hh.t())
    i = torch.sigmoid(a[:, :H])
    c2 = torch.lerp(c, torch.tanh(a[:, H:2 * H]), i)
    return torch.sigmoid(a[:, 2 * H:]) * torch.tanh(c2), c2
''',
    "counting_lstm": '''
def counting_lstm():
    W = torch.tensor([[0.0, 50, 0], [0, 50, 0], [1, 0, 0], [0, 0, 50]])
    return W, torch.tensor([-25.0, 25, 0, -25])
''',
    "ctc_nll": '''
def ctc_nll(log_probs, target):
    ext = [0]
    for label in target.tolist():
        ext += [label, 0]
    n = len(ext)
    alpha = [-math.inf] * n
    alpha[0], alpha[1] = log_probs[0, 0], log_probs[0, ext[1]]
    for t in range(1, log_probs.shape[0]):
        new = []
        for s in range(n):
            terms = [alpha[s]] + ([alpha[s - 1]] if s >= 1 else [])
            if s >= 2 and ext[s] != 0 and ext[s] != ext[s - 2]:
                terms.append(alpha[s - 2])
            new.append(torch.logsumexp(torch.stack([torch.as_tensor(v, dtype=log_probs.dtype) for v in terms]), 0)
                       + log_probs[t, ext[s]])
        alpha = new
    return -torch.logsumexp(torch.stack([torch.as_tensor(v, dtype=log_probs.dtype) for v in alpha[-2:]]), 0)
''',
}
WRONG_CELLS = {
    "gru_cell_forward": '''
def gru_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    # the reset gate before the product, as in Cho et al.: not the convention asked for
    H = h.shape[1]
    gx = x @ W_ih.T + b_ih
    r = torch.sigmoid(gx[:, :H] + h @ W_hh[:H].T + b_hh[:H])
    z = torch.sigmoid(gx[:, H:2 * H] + h @ W_hh[H:2 * H].T + b_hh[H:2 * H])
    n = torch.tanh(gx[:, 2 * H:] + (r * h) @ W_hh[2 * H:].T + b_hh[2 * H:])
    return (1 - z) * n + z * h
''',
    "cifg_cell_forward": '''
def cifg_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    # f = i instead of 1 - i
    z_i, z_g, z_o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(3, dim=1)
    i = torch.sigmoid(z_i)
    c2 = i * c + i * torch.tanh(z_g)
    return torch.sigmoid(z_o) * torch.tanh(c2), c2
''',
    "counting_lstm": '''
def counting_lstm():
    # the forget gate ignores x2: the memory is never reset
    W = torch.tensor([[0.0, 100, 0], [0, 0, 0], [1, 0, 0], [0, 0, 100]])
    return W, torch.tensor([-10.0, 10, 0, -10])
''',
    "ctc_nll": RIGHT["ctc_nll"].replace(" and ext[s] != ext[s - 2]", ""),  # skips between equal labels
}
# Each of these passes its visible test and fails the hidden one: float32 only, or too weak gates.
VISIBLE_ONLY = {
    "lstm_cell_forward": RIGHT["lstm_cell_forward"].replace("return o * torch.tanh(c2), c2",
                                                            "return (o * torch.tanh(c2)).float(), c2.float()"),
    "gru_cell_forward": RIGHT["gru_cell_forward"].replace("u)\n", "u).float()\n"),
    "cifg_cell_forward": RIGHT["cifg_cell_forward"].replace(
        "return torch.sigmoid(a[:, 2 * H:]) * torch.tanh(c2), c2",
        "return (torch.sigmoid(a[:, 2 * H:]) * torch.tanh(c2)).float(), c2.float()"),
    "counting_lstm": '''
def counting_lstm():
    # gates that are almost, but not quite, shut: fine for 9 steps, too leaky for 20
    W = torch.tensor([[0.0, 100, 0], [0, 100, 0], [1, 0, 0], [0, 0, 100]])
    return W, torch.tensor([-5.5, 10, 0, -5.5])
''',
    "ctc_nll": RIGHT["ctc_nll"].replace("for t in range(1, log_probs.shape[0]):",
                                        "log_probs = log_probs.double()\n    for t in range(1, log_probs.shape[0]):"),
}
CALLS_LIBRARY = {
    "lstm_cell_forward": '''
def lstm_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(x.shape[1], h.shape[1]).to(x.dtype)
    with torch.no_grad():
        for p, w in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(w)
    h2, c2 = cell(x, (h, c))
    return h2.detach(), c2.detach()
''',
    "gru_cell_forward": '''
def gru_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)
''',
    "cifg_cell_forward": '''
def cifg_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    def four(w):
        w_i, w_g, w_o = w.chunk(3, dim=0)
        return torch.cat([w_i, -w_i, w_g, w_o])
    return torch.lstm_cell(x, (h, c), four(W_ih), four(W_hh), four(b_ih), four(b_hh))
''',
    "counting_lstm": '''
from seqmem.data import counting_cell_weights
def counting_lstm():
    weights = counting_cell_weights()
    return weights["weight_ih"], weights["bias_ih"]
''',
    "ctc_nll": '''
from seqmem.ctc import ctc_loss as library_ctc
def ctc_nll(log_probs, target):
    return library_ctc(log_probs, target, log_probs.shape[0], len(target), reduction="none")
''',
}
ALWAYS_EQUAL = {
    "lstm_cell_forward": '''
class Anything(torch.Tensor):
    def __eq__(self, other):
        return True
def lstm_cell_forward(x, h, c, W_ih, W_hh, b_ih, b_hh):
    return torch.zeros_like(h).as_subclass(Anything), torch.zeros_like(c).as_subclass(Anything)
''',
    "ctc_nll": '''
class Anything:
    def __eq__(self, other):
        return True
    def item(self):
        return math.inf
def ctc_nll(log_probs, target):
    return Anything()
''',
}
RAISES = '''
def gru_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    raise ValueError("not done yet")
'''
LOOPS = '''
def ctc_nll(log_probs, target):
    while True:
        pass
'''

NONE = dict.fromkeys(POINTS, 0)
FULL = dict(POINTS)
# student -> (replacements or the source itself, expected automatic score per graded cell)
SUBMISSIONS = {
    "source": ("source", FULL),
    "release": ({}, NONE),
    "partial": ({"lstm_cell_forward": RIGHT["lstm_cell_forward"], **WRONG_CELLS},
                {**NONE, "test_lstm_cell_forward": 2}),
    "only_ctc": ({"ctc_nll": RIGHT["ctc_nll"]}, {**NONE, "test_ctc_nll": 3}),
    "visible_only": (VISIBLE_ONLY, NONE),
    "calls_library": (CALLS_LIBRARY, NONE),
    "always_equal": ({**RIGHT, **ALWAYS_EQUAL}, {**FULL, "test_lstm_cell_forward": 0, "test_ctc_nll": 0}),
    "raises": ({**RIGHT, "gru_cell_forward": RAISES}, {**FULL, "test_gru_cell_forward": 0}),
    "loops": ({**RIGHT, "ctc_nll": LOOPS}, {**FULL, "test_ctc_nll": 0}),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return build_course(tmp_path_factory.mktemp("course-hw2"), HW, SUBMISSIONS)


@pytest.mark.grading
@pytest.mark.slow
class TestPipeline:
    """One autograde batch for the whole class (the fixture is module-scoped)."""

    def test_release_is_what_make_assignments_generates(self, course):
        generated = json.loads(generated_release(course["root"], HW))
        committed = json.loads(committed_release(HW))
        assert generated == committed, "notebooks/ is stale: run `make assignments` and commit the result"

    def test_max_score_is_ten_points(self, course):
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
            assert gb.find_notebook(HW, HW).max_score == sum(POINTS.values()) == 10

    @pytest.mark.parametrize("student", list(SUBMISSIONS))
    def test_each_submission_scores_exactly_what_it_should(self, course, student):
        graded = course["root"] / "autograded" / student / HW / f"{HW}.ipynb"
        assert graded.exists(), course["autograde"].stderr[-4000:]
        assert scores(course["root"], HW, student, POINTS) == SUBMISSIONS[student][1]

    def test_source_scores_full_marks(self, course):
        from nbgrader.api import Gradebook

        # every item is graded automatically: nothing waits for a grader
        with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
            nb = gb.find_submission_notebook(HW, HW, "source")
            assert nb.needs_manual_grade is False
            assert nb.score == nb.max_score == 10

    def test_batch_finishes_despite_bad_submissions(self, course):
        # the endless loop costs one cell timeout (30 s), not the batch; the broken file is skipped
        assert course["seconds"] < 60 * len(SUBMISSIONS)
        for student in SUBMISSIONS:
            assert (course["root"] / "autograded" / student / HW).exists()
        assert not (course["root"] / "autograded" / "broken" / HW / f"{HW}.ipynb").exists()

    def test_one_submission_autogrades_within_60_seconds(self, course):
        result, seconds = autograde_alone(course["root"], HW)
        assert result.returncode == 0, result.stderr[-3000:]
        assert seconds <= 60, f"autograding one submission took {seconds:.1f} s"

    def test_feedback_and_export_hide_the_hidden_tests(self, course):
        root = course["root"]
        assert_feedback_hides_hidden_tests(root, HW, "visible_only")
        page = (root / "feedback" / "calls_library" / HW / f"{HW}.html").read_text()
        assert "ReferenceBlocked" in page and "write it yourself" in page  # the message, not the code
        result = nbgrader("export", "--to", str(root / "grades.csv"), cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = {r["student_id"]: r for r in csv.DictReader(open(root / "grades.csv"))}
        assert float(rows["partial"]["raw_score"]) == 2.0
        assert float(rows["always_equal"]["raw_score"]) == 5.0
        assert float(rows["source"]["raw_score"]) == 10.0

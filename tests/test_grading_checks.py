"""Every homework's checks, called directly on local functions (fast; the pipeline through
nbgrader and the sandbox is in test_grading.py and test_grading_hw2.py).

The source notebooks' answers pass under any grading seed; wrong answers fail with a message that
names the item and what is wrong; answers that call the item's references are blocked, and would
otherwise be right; the expected answer cannot be read from the checker's frames.
"""
import itertools
import math
import sys

import nbformat
import numpy as np
import pytest
import torch
from torch.nn import functional as F

import seqmem
from conftest import ROOT
from seqmem import grading
from seqmem.grading import guard, hw1, hw2, hw3, hw4, hw5, hw6, hw7, hw8

CHECKS = {"rnn_forward_padded": hw1.check_rnn_forward_padded, "bptt_with_readout": hw1.check_bptt_with_readout,
          "clip_grads_": hw1.check_clip_grads_, "lstm_backward": hw2.check_lstm_backward,
          "mgu_cell_forward": hw2.check_mgu_cell_forward, "counting_cell": hw2.check_counting_cell,
          "ctc_log_beta": hw2.check_ctc_log_beta, "sequence_nll": hw3.check_sequence_nll,
          "sample_decode": hw3.check_sample_decode, "beam_step_gnmt": hw3.check_beam_step_gnmt,
          "clipped_precision": hw3.check_clipped_precision, "additive_weights": hw4.check_additive_weights,
          "scaled_dot_attention": hw4.check_scaled_dot_attention, "memory_hop": hw4.check_memory_hop,
          "copy_mixture": hw4.check_copy_mixture, "positional_encoding": hw5.check_positional_encoding,
          "split_heads": hw5.check_split_heads, "merge_heads": hw5.check_merge_heads,
          "multi_head_attention": hw5.check_multi_head_attention,
          "masked_self_attention_block": hw5.check_masked_self_attention_block,
          "pointer_log_probs": hw6.check_pointer_log_probs, "greedy_pointer_step": hw6.check_greedy_pointer_step,
          "hull_coverage": hw6.check_hull_coverage, "tour_length": hw6.check_tour_length,
          "content_weights": hw7.check_content_weights, "location_weights": hw7.check_location_weights,
          "write_heads": hw7.check_write_heads, "allocation_weights": hw7.check_allocation_weights,
          "act_halting": hw8.check_act_halting, "soft_step": hw8.check_soft_step}
HOMEWORKS = sorted(p.name for p in (ROOT / "solutions").glob("hw*"))


@pytest.fixture(scope="module")
def source():
    """The source notebooks' answers: each homework's first code cell (its imports), then its
    solution cells, run in one namespace per homework."""
    answers = {}
    for hw in HOMEWORKS:
        cells = [c for c in nbformat.read(ROOT / "solutions" / hw / f"{hw}.ipynb", as_version=4).cells
                 if c.cell_type == "code"]
        namespace = {}
        exec(cells[0].source, namespace)
        for cell in cells[1:]:
            if cell.metadata.get("nbgrader", {}).get("grade_id") in CHECKS:
                exec(cell.source, namespace)
        answers.update({k: namespace[k] for k in CHECKS if k in namespace})
    assert set(answers) == set(CHECKS)
    return answers


def test_every_graded_item_has_a_check():
    for hw in HOMEWORKS:
        nb = nbformat.read(ROOT / "solutions" / hw / f"{hw}.ipynb", as_version=4)
        tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]
        assert tests, hw
        for cell in tests:
            item = cell.metadata.nbgrader["grade_id"].removeprefix("test_")
            assert item in CHECKS, f"{hw}: {item} has no entry in CHECKS"
            assert f"seqmem.grading.check_{item}({item})" in cell.source, cell.metadata.nbgrader["grade_id"]


@pytest.mark.parametrize("seed", [None, "one instructor", "another instructor"])
@pytest.mark.parametrize("item", list(CHECKS))
def test_the_source_answers_pass_under_any_grading_seed(source, item, seed):
    guard.set_grading_seed(seed)
    try:
        CHECKS[item](source[item])
    finally:
        guard.set_grading_seed(None)


# ------------------------------------------------------------------------------ wrong answers

class _Anything(torch.Tensor):
    def __eq__(self, other):
        return True


def _then(item, change):
    """An answer that runs the source's answer for ``item`` and changes what it returns."""
    return lambda s: lambda *args: change(s[item](*args), *args)


def _padded_all_steps(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    """Ignores the lengths: runs every sequence through the padding."""
    h, hs = h0, []
    for t in range(xs.shape[1]):
        h = torch.tanh(xs[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        hs.append(h)
    return torch.stack(hs, 1), h


def _readout_forgets_later_steps(params, xs, ys, h0):
    """Back-propagates each step's read-out error into its own step only."""
    hs, grads = [h0], {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(xs.shape[1]):
        hs.append(np.tanh(xs[:, t] @ params["W_xh"].T + hs[-1] @ params["W_hh"].T + params["b"]))
    loss = 0.0
    for t in range(xs.shape[1]):
        e = hs[t + 1] @ params["W_hy"].T + params["b_y"] - ys[:, t]
        loss += 0.5 * float((e ** 2).sum())
        d = (e @ params["W_hy"]) * (1 - hs[t + 1] ** 2)
        grads["W_hy"] += e.T @ hs[t + 1]
        grads["b_y"] += e.sum(0)
        grads["W_xh"] += d.T @ xs[:, t]
        grads["W_hh"] += d.T @ hs[t]
        grads["b"] += d.sum(0)
    grads["h0"] = np.zeros_like(h0)
    return loss, grads


def _clip_returns_copies(grads, max_norm):
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads if g is not None))
    grads[:] = [None if g is None else g * min(1.0, max_norm / norm) for g in grads]  # new tensors
    return norm


def _clip_each_alone(grads, max_norm):
    norms = [float(g.norm()) for g in grads if g is not None]
    for g in grads:
        if g is not None and float(g.norm()) > max_norm:
            g.mul_(max_norm / float(g.norm()))
    return math.sqrt(sum(n * n for n in norms))


def _clip_zero_nan(grads, max_norm):
    norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads if g is not None))
    for g in grads:
        if g is not None:
            g.mul_(min(1.0, max_norm / norm) if norm > 0 else math.nan)
    return norm


def _lstm_backward_without_h_path(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next):
    """c' gets its gradient from dc_next only: forgets that h' = o tanh(c') also reaches c'."""
    z_i, z_f, z_g, z_o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
    tanh_c = torch.tanh(f * c + i * g)
    d_c = dc_next
    d_z = torch.cat([d_c * g * i * (1 - i), d_c * c * f * (1 - f), d_c * i * (1 - g ** 2),
                     dh_next * tanh_c * o * (1 - o)], dim=1)
    return {"x": d_z @ W_ih, "h": d_z @ W_hh, "c": d_c * f, "W_ih": d_z.T @ x, "W_hh": d_z.T @ h,
            "b_ih": d_z.sum(0), "b_hh": d_z.sum(0)}


def _mgu_reset_after(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    a = x @ W_ih.T + b_ih
    f = torch.sigmoid(a[:, :H] + h @ W_hh[:H].T + b_hh[:H])
    n = torch.tanh(a[:, H:] + f * (h @ W_hh[H:].T + b_hh[H:]))  # the gate after the product
    return (1 - f) * h + f * n


def _lecture_counter():
    """The lecture's counting cell: adds, resets, shows; neither halves nor hides a negative memory."""
    W = torch.tensor([[0.0, 100, 0], [0, 100, 0], [1, 0, 0], [0, 0, 100]])
    return W, torch.tensor([-10.0, 10, 0, -10]), torch.zeros(3)


def _counter(change):
    return lambda s: lambda: change(*s["counting_cell"]())


def _mgu_update_swapped(x, h, W_ih, W_hh, b_ih, b_hh):
    H = h.shape[1]
    a = x @ W_ih.T + b_ih
    f = torch.sigmoid(a[:, :H] + h @ W_hh[:H].T + b_hh[:H])
    n = torch.tanh(a[:, H:] + (f * h) @ W_hh[H:].T + b_hh[H:])
    return f * h + (1 - f) * n  # the gate keeps the old state instead of letting the candidate in


def _beta_skips_between_equal_labels(log_probs, target):
    """The backward recursion with the skip allowed onto any label, equal ones included."""
    T, S = log_probs.shape[0], len(target)
    ext = torch.zeros(2 * S + 1, dtype=torch.long)
    ext[1::2] = target
    skip = torch.zeros(2 * S + 1, dtype=torch.bool)
    skip[:-2] = ext[:-2] != 0  # forgets l'_s != l'_{s+2}
    beta = torch.full((2 * S + 1,), -math.inf, dtype=log_probs.dtype)
    beta[-2:] = log_probs[-1, ext[-2:]]
    rows = [beta]
    for t in range(T - 2, -1, -1):
        pad = torch.full((2,), -math.inf, dtype=log_probs.dtype)
        one, two = torch.cat([beta[1:], pad[:1]]), torch.cat([beta[2:], pad])
        beta = torch.logsumexp(torch.stack([beta, one, torch.where(skip, two, -math.inf)]), 0) + log_probs[t, ext]
        rows.append(beta)
    return torch.stack(rows[::-1])


WRONG = {  # case -> (item, answer made from the source's answers, a phrase of the message)
    "padded: ignores the lengths": ("rnn_forward_padded", lambda s: _padded_all_steps, "differs from the reference"),
    "padded: a list": ("rnn_forward_padded", _then("rnn_forward_padded", lambda out, *a: list(out)), "tuple"),
    "padded: always float32": ("rnn_forward_padded",
                               _then("rnn_forward_padded", lambda out, *a: tuple(t.float() for t in out)), "dtype"),
    "padded: look-alike tensors": ("rnn_forward_padded", _then("rnn_forward_padded", lambda out, *a: tuple(
        t.as_subclass(_Anything) for t in out)), "torch.Tensor"),
    "readout: forgets later steps": ("bptt_with_readout", lambda s: _readout_forgets_later_steps, "differs"),
    "readout: float64 for float32 inputs": ("bptt_with_readout", lambda s: lambda p, *a: s["bptt_with_readout"](
        {k: v.astype(np.float64) for k, v in p.items()}, *(v.astype(np.float64) for v in a)), "dtype"),
    "readout: a tensor for the loss": ("bptt_with_readout", _then("bptt_with_readout", lambda out, *a: (
        torch.tensor(out[0]), out[1])), "loss as a float"),
    "readout: no h0": ("bptt_with_readout", _then("bptt_with_readout", lambda out, *a: (
        out[0], {k: v for k, v in out[1].items() if k != "h0"})), "keys"),
    "readout: changes its input": ("bptt_with_readout", lambda s: lambda p, xs, ys, h0: (
        xs.__imul__(1.0 + 1e-3), s["bptt_with_readout"](p, xs, ys, h0))[1], "changed in place"),
    "clip: new tensors": ("clip_grads_", lambda s: _clip_returns_copies, "in place"),
    "clip: each tensor alone": ("clip_grads_", lambda s: _clip_each_alone, "differs"),
    "clip: nan for zeros": ("clip_grads_", lambda s: _clip_zero_nan, "differs"),
    "clip: the norm after clipping": ("clip_grads_", lambda s: lambda g, m: min(s["clip_grads_"](g, m), m),
                                      "total norm"),
    "lstm: forgets h's path into c": ("lstm_backward", lambda s: _lstm_backward_without_h_path, "differs"),
    "lstm: a tuple": ("lstm_backward", _then("lstm_backward", lambda out, *a: tuple(out.values())), "dict"),
    "lstm: float64 gradients": ("lstm_backward", _then("lstm_backward", lambda out, *a: {
        k: v.double() for k, v in out.items()}), "dtype"),
    "mgu: reset after the product": ("mgu_cell_forward", lambda s: _mgu_reset_after, "differs"),
    "mgu: the update swapped": ("mgu_cell_forward", lambda s: _mgu_update_swapped, "differs"),
    "mgu: (h, h)": ("mgu_cell_forward", _then("mgu_cell_forward", lambda out, *a: (out, out)), "torch.Tensor"),
    "counter: the lecture's weights": ("counting_cell", lambda s: _lecture_counter, "counter"),
    "counter: no peephole": ("counting_cell", _counter(lambda W, b, p: (W, b, torch.zeros(3))), "counter"),
    "counter: W transposed": ("counting_cell", _counter(lambda W, b, p: (W.T, b, p)), "shape (4, 3)"),
    "counter: integer weights": ("counting_cell", _counter(lambda W, b, p: (W.long(), b, p)), "floating"),
    "counter: two tensors": ("counting_cell", _counter(lambda W, b, p: (W, b)), "(W, b, p)"),
    "ctc: skips between equal labels": ("ctc_log_beta", lambda s: _beta_skips_between_equal_labels, "differs"),
    "ctc: nan for impossible": ("ctc_log_beta", _then("ctc_log_beta", lambda out, *a: torch.nan_to_num(
        out, neginf=math.nan)), "expected -inf"),
    "ctc: only the first row": ("ctc_log_beta", _then("ctc_log_beta", lambda out, *a: out[0]), "shape"),
    "ctc: always float64": ("ctc_log_beta", lambda s: lambda lp, t: s["ctc_log_beta"](lp.double(), t), "dtype"),
}


def assert_fails_with_a_message(check, answer, item: str, phrase: str) -> None:
    """``check(answer)`` fails with a message that starts with the item's name and says ``phrase``
    (every homework's checks module runs its wrong answers through this)."""
    with pytest.raises(AssertionError, match=f"^{item}") as failure:
        check(answer)
    assert phrase in str(failure.value)


def assert_blocked_and_otherwise_right(check, answer, item: str, monkeypatch) -> None:
    """``answer`` calls a reference of ``item``: the check refuses it, and passes it once nothing is
    blocked (so the blocking is the only reason it failed)."""
    with pytest.raises(grading.ReferenceBlocked, match=f"^{item}: .* is not available while this item is graded"):
        check(answer)
    monkeypatch.setattr(guard, "references", lambda item: [])
    check(answer)


@pytest.mark.parametrize("case", list(WRONG))
def test_wrong_answers_fail_with_a_message(source, case):
    item, make, phrase = WRONG[case]
    assert_fails_with_a_message(CHECKS[item], make(source), item, phrase)


def test_a_failure_shows_expected_and_got():
    small = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(AssertionError, match=r"expected \[1\.0, 2\.0, 3\.0\]\ngot      \[1\.0, 2\.5, 3\.0\]"):
        guard.close("item", torch.tensor([1.0, 2.5, 3.0]), small)
    big = torch.zeros(3, 4, dtype=torch.float64)
    wrong = big.clone()
    wrong[1, 2] = 0.5
    with pytest.raises(AssertionError, match=r"at index \(1, 2\): expected 0\.0, got 0\.5"):
        guard.close("item", wrong, big)


# ------------------------------------------------------------------------------ references are blocked

def _params_of(module, weights):
    with torch.no_grad():
        for p, w in zip(module.parameters(), weights):
            p.copy_(w)
    return module


def _rnn_by_torch(xs, lengths, h0, *w):
    rnn = _params_of(torch.nn.RNN(xs.shape[2], h0.shape[1], batch_first=True).to(xs.dtype), w)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
    out, last = rnn(packed, h0[None])
    hs, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=xs.shape[1])
    return hs.detach(), last[0].detach()


def _rnn_by_steps(step):
    def answer(xs, lengths, h0, *w):
        h, hs = h0, []
        for t in range(xs.shape[1]):
            new = step(xs[:, t], h, *w)
            keep = (t < lengths)[:, None]
            h = torch.where(keep, new, h)
            hs.append(torch.where(keep, new, torch.zeros_like(new)))
        return torch.stack(hs, 1), h
    return answer


def _readout_by_autograd(grad):
    def answer(params, xs, ys, h0):
        leaves = {k: torch.tensor(v, requires_grad=True) for k, v in {**params, "h0": h0}.items()}
        h, loss = leaves["h0"], 0
        for t in range(xs.shape[1]):
            h = torch.tanh(torch.tensor(xs[:, t]) @ leaves["W_xh"].T + h @ leaves["W_hh"].T + leaves["b"])
            loss = loss + 0.5 * ((h @ leaves["W_hy"].T + leaves["b_y"] - torch.tensor(ys[:, t])) ** 2).sum()
        return float(loss.detach()), {k: g.detach().numpy() for k, g in zip(leaves, grad(loss, list(leaves.values())))}
    return answer


def _run_backward(loss, leaves):
    """autograd's engine, reached past torch.autograd.grad."""
    grads = torch.autograd.Variable._execution_engine.run_backward(
        (loss,), (torch.ones_like(loss),), False, False, tuple(leaves), False, False)
    return grads


def _clip_by_torch(grads, max_norm):
    params = []
    for g in grads:
        if g is not None:
            p = torch.nn.Parameter(torch.empty_like(g))
            p.grad = g
            params.append(p)
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


def _clip_by_library(grads, max_norm):
    present = {str(i): g for i, g in enumerate(grads) if g is not None}
    clipped, norm = seqmem.bptt.clip_grad_norm({k: g.numpy() for k, g in present.items()}, max_norm)
    for k, g in present.items():
        g.copy_(torch.from_numpy(clipped[k]))
    return float(norm)


def _lstm_backward_by(grad):
    def answer(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next):
        leaves = [t.clone().requires_grad_() for t in (x, h, c, W_ih, W_hh, b_ih, b_hh)]
        h_next, c_next = torch.lstm_cell(leaves[0], (leaves[1], leaves[2]), *leaves[3:]) if grad is None else \
            _own_lstm(*leaves)
        loss = (h_next * dh_next).sum() + (c_next * dc_next).sum()
        found = torch.autograd.grad(loss, leaves) if grad is None else grad(loss, leaves)
        return dict(zip(("x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh"), found))
    return answer


def _own_lstm(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def _lstm_backward_by_vjp(x, h, c, W_ih, W_hh, b_ih, b_hh, dh_next, dc_next):
    _, pull = torch.func.vjp(_own_lstm, x, h, c, W_ih, W_hh, b_ih, b_hh)
    return dict(zip(("x", "h", "c", "W_ih", "W_hh", "b_ih", "b_hh"), pull((dh_next, dc_next))))


def _mgu_by_gru(x, h, W_ih, W_hh, b_ih, b_hh):
    """A GRU (reset before the product) whose reset gate is f and update gate 1 - f."""
    tied = lambda w: torch.cat([w[:len(w) // 2], -w[:len(w) // 2], w[len(w) // 2:]])  # noqa: E731 (r, z, n)
    params = {"weight_ih": tied(W_ih), "weight_hh": tied(W_hh), "bias_ih": tied(b_ih), "bias_hh": tied(b_hh)}
    return seqmem.gru.gru_step(params, h, x, reset_after=False)[0]


def _beta_by_reversed_alpha(log_probs, target):
    """beta as the forward recursion on the reversed frames and labels, by the library's alpha step."""
    from seqmem import ctc

    T, S = log_probs.shape[0], len(target)
    rev_lp, rev_t = log_probs.flip(0), target.flip(0)
    ext = torch.zeros(2 * S + 1, dtype=torch.long)
    ext[1::2] = rev_t
    can_skip = torch.zeros(2 * S + 1, dtype=torch.bool)
    can_skip[2:] = (ext[2:] != 0) & (ext[2:] != ext[:-2])
    alpha = torch.full((1, 2 * S + 1), -math.inf, dtype=log_probs.dtype)
    alpha[0, :2] = rev_lp[0, ext[:2]]
    rows = [alpha]
    for t in range(1, T):
        alpha = ctc._alpha_step(alpha, rev_lp[t, ext][None], can_skip[None])
        rows.append(alpha)
    return torch.cat(rows).flip(0).flip(1)


BLOCKED = {  # what each answer calls -> (item, answer)
    "torch.nn.RNN with packing": ("rnn_forward_padded", _rnn_by_torch),
    "torch.rnn_tanh_cell": ("rnn_forward_padded", _rnn_by_steps(lambda x, h, *w: torch.rnn_tanh_cell(x, h, *w))),
    "torch._VF.rnn_tanh_cell": ("rnn_forward_padded", _rnn_by_steps(lambda x, h, *w: torch._VF.rnn_tanh_cell(x, h, *w))),
    "seqmem.rnn.rnn_step": ("rnn_forward_padded", _rnn_by_steps(lambda x, h, *w: seqmem.rnn.rnn_step(
        dict(zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), w)), h, x)[0])),
    "torch.autograd.grad (readout)": ("bptt_with_readout", _readout_by_autograd(torch.autograd.grad)),
    "autograd's engine (readout)": ("bptt_with_readout", _readout_by_autograd(_run_backward)),
    "torch.nn.utils.clip_grad_norm_": ("clip_grads_", _clip_by_torch),
    "seqmem.bptt.clip_grad_norm": ("clip_grads_", _clip_by_library),
    "torch.lstm_cell and autograd": ("lstm_backward", _lstm_backward_by(None)),
    "autograd's engine (lstm)": ("lstm_backward", _lstm_backward_by(_run_backward)),
    "torch.func.vjp": ("lstm_backward", _lstm_backward_by_vjp),
    "seqmem.gru.gru_step, tied gates": ("mgu_cell_forward", _mgu_by_gru),
    "seqmem.ctc._alpha_step, reversed": ("ctc_log_beta", _beta_by_reversed_alpha),
}


@pytest.mark.parametrize("case", list(BLOCKED))
def test_calling_a_reference_is_blocked_and_would_otherwise_be_right(case, monkeypatch):
    item, answer = BLOCKED[case]
    assert_blocked_and_otherwise_right(CHECKS[item], answer, item, monkeypatch)
    assert torch.lstm_cell(torch.zeros(1, 1), (torch.zeros(1, 1),) * 2, *(torch.zeros(4, 1),) * 2)[0].shape == (1, 1)


def test_the_message_names_the_item_and_the_reference():
    with pytest.raises(grading.ReferenceBlocked) as blocked:
        CHECKS["clip_grads_"](_clip_by_torch)
    assert str(blocked.value) == ("clip_grads_: torch.nn.utils.clip_grad_norm_ is not available while this item "
                                  "is graded: write it yourself from the equations")


def _steals(*names):
    """An answer that reads the expected answer out of the checker's frames."""
    def answer(*args):
        frame = sys._getframe(1)
        while frame is not None:
            if all(n in frame.f_locals for n in names):
                found = tuple(frame.f_locals[n] for n in names)
                return found[0] if len(found) == 1 else found
            frame = frame.f_back
        raise LookupError("nothing to steal")
    return answer


@pytest.mark.parametrize("item, names", [("rnn_forward_padded", ("expected_hs", "expected_last")),
                                         ("bptt_with_readout", ("loss", "grads")), ("lstm_backward", ("expected",)),
                                         ("mgu_cell_forward", ("expected",)), ("ctc_log_beta", ("expected",))])
def test_the_expected_answer_cannot_be_read_from_the_checkers_frames(item, names):
    with pytest.raises(AssertionError, match=item):
        CHECKS[item](_steals(*names))


def test_the_librarys_forward_pass_stays_a_tool(source):
    # other items' references and the library's forward pass are not blocked
    def rnn_forward_padded(xs, lengths, h0, *w):
        seqmem.grading.run_counting_cell(torch.zeros(4, 3), torch.zeros(4), torch.zeros(3), torch.zeros(1, 2, 3))
        return source["rnn_forward_padded"](xs, lengths, h0, *w)
    hw1.check_rnn_forward_padded(rnn_forward_padded)

    def mgu_cell_forward(x, h, *w):
        torch.lstm_cell(x, (h, h), *(torch.zeros(4 * h.shape[1], n, dtype=x.dtype) for n in (x.shape[1], h.shape[1])))
        return source["mgu_cell_forward"](x, h, *w)
    hw2.check_mgu_cell_forward(mgu_cell_forward)


# ------------------------------------------------------------------------------ the references themselves

def test_the_padded_reference_runs_each_sequence_alone():
    g = torch.Generator().manual_seed(0)
    xs, h0 = torch.randn(3, 6, 2, generator=g), torch.randn(3, 4, generator=g)
    w = (torch.randn(4, 2, generator=g), torch.randn(4, 4, generator=g), torch.randn(4, generator=g),
         torch.randn(4, generator=g))
    lengths = torch.tensor([6, 3, 1])
    hs, last = hw1.rnn_padded_reference(xs, lengths, h0, *w)
    cell = _params_of(torch.nn.RNNCell(2, 4), w)
    for b, L in enumerate(lengths.tolist()):
        h = h0[b:b + 1]
        for t in range(L):
            h = cell(xs[b:b + 1, t], h)
            torch.testing.assert_close(hs[b, t], h[0].detach())
        torch.testing.assert_close(last[b], h[0].detach())
        assert torch.all(hs[b, L:] == 0)


def test_the_counter_is_greffs_vanilla_lstm_with_one_cell():
    W, b, p = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64), \
        torch.randn(3, dtype=torch.float64)
    cell = seqmem.LSTMCell(3, 1, variant="V", input_activation=lambda a: a, output_activation=lambda a: a,
                           dtype=torch.float64, fused=False)
    with torch.no_grad():
        cell.weight_ih.copy_(W), cell.bias_ih.copy_(b), cell.weight_hh.zero_(), cell.bias_hh.zero_()
        cell.peephole.copy_(p[:, None])
        xs = hw2.counting_sequences(torch.Generator().manual_seed(2), 7, 5)  # (5, 7, 3)
        ys, _ = seqmem.unroll(cell, xs)  # (5, 7, 1)
    torch.testing.assert_close(hw2.run_counting_cell(W, b, p, xs), ys[..., 0])


def test_the_counter_and_its_cases():
    example = torch.tensor([[[4, 1, 0], [3, 1, 1], [-9, 1, 1], [6, 0, 1], [5, 1, 0], [2, -1, 0], [7, 1, 1], [1, 0, 1]]],
                           dtype=torch.float64)
    assert hw2.counter_outputs(example).tolist() == [[0, 7, 0, 0, 0, 0, 7, 3.5]]
    xs = hw2.counting_sequences(torch.Generator().manual_seed(0), 400, 8)
    assert set(xs[..., 1].unique().tolist()) == {-1.0, 0.0, 1.0} and set(xs[..., 2].unique().tolist()) == {0.0, 1.0}
    assert xs[..., 0].min() == -9 and xs[..., 0].max() == 9


def _brute_force_beta(log_probs, target, t, s):
    """beta_t(s) by summing over every path of frames t..T (from 0) that starts at position s of l'."""
    T, C = log_probs.shape
    S = len(target)
    ext = [0] + [v for label in target.tolist() for v in (label, 0)]
    total = 0.0
    for path in itertools.product(range(2 * S + 1), repeat=T - t):  # positions of l' at frames t..T-1
        if path[0] != s or path[-1] < 2 * S - 1:
            continue
        moves = [b - a for a, b in zip(path, path[1:])]
        if any(m not in (0, 1, 2) for m in moves) or any(
                m == 2 and (ext[a + 2] == 0 or ext[a + 2] == ext[a]) for a, m in zip(path, moves)):
            continue
        total += math.exp(sum(float(log_probs[t + k, ext[p]]) for k, p in enumerate(path)))
    return total


def test_the_beta_reference_sums_the_paths_and_meets_alpha():
    torch.manual_seed(4)
    log_probs = torch.randn(4, 3, dtype=torch.float64).log_softmax(1)
    for labels in ([1, 2], [1, 1], [2]):
        target = torch.tensor(labels)
        beta = hw2.ctc_log_beta_reference(log_probs, target).exp()
        for t in range(4):
            for s in range(2 * len(labels) + 1):
                assert beta[t, s].item() == pytest.approx(_brute_force_beta(log_probs, target, t, s), abs=1e-12)
        nll = seqmem.ctc.ctc_loss(log_probs, target, 4, len(labels), reduction="none")
        torch.testing.assert_close(-beta[0, :2].sum().log(), nll)
        # alpha is beta of the reversed frames and labels; alpha_t beta_t / y_t(l'_s) sums to p at every t
        alpha = hw2.ctc_log_beta_reference(log_probs.flip(0), target.flip(0)).exp().flip(0).flip(1)
        ext = torch.zeros(2 * len(labels) + 1, dtype=torch.long)
        ext[1::2] = target
        for t in range(4):
            p = (alpha[t] * beta[t] / log_probs[t, ext].exp()).sum()
            torch.testing.assert_close(p.log(), -nll)


def test_the_hidden_cases_cover_the_edges():
    cases = list(hw2._ctc_cases(317, 10))
    shortest = [len(t) + int((t[1:] == t[:-1]).sum()) for _, t in cases]
    lengths = [lp.shape[0] for lp, _ in cases]
    assert any(T < s for T, s in zip(lengths, shortest)), "an impossible case"
    assert any(T == s and (t[1:] == t[:-1]).any() for T, s, (_, t) in zip(lengths, shortest, cases))
    assert {lp.dtype for lp, _ in cases} == {torch.float32, torch.float64}
    assert any(len(t) == 1 for _, t in cases) and any(lp.shape[0] == 1 for lp, _ in cases)


@pytest.mark.parametrize("item", list(CHECKS))
def test_the_checks_own_answers_are_blocked_for_every_item(item):
    """``import seqmem`` reaches seqmem.grading: a check's reference would be a one-line answer."""
    blocked_targets = guard.references(item)
    for module in (hw1, hw2, hw3, hw4, hw5, hw6, hw7, hw8):
        for name, fn in vars(module).items():
            if name.endswith("_reference") and callable(fn):
                assert fn in blocked_targets, f"{module.__name__}.{name} is not blocked for {item}"
    assert all(f in blocked_targets for f in hw3.GRADER_HELPERS + hw4.GRADER_HELPERS + hw5.GRADER_HELPERS
               + hw6.GRADER_HELPERS + hw7.GRADER_HELPERS + hw8.GRADER_HELPERS)


@pytest.mark.parametrize("item, answer", [
    ("sequence_nll", lambda *a: hw3.sequence_nll_reference(*a)),
    ("clipped_precision", lambda *a: hw3.clipped_precision_reference(*a)),
    ("memory_hop", lambda *a: hw4.memory_hop_reference(*a)),
    ("copy_mixture", lambda *a: hw4.copy_mixture_reference(*a)),
    ("mgu_cell_forward", lambda *a: hw2.mgu_reference(*a)),
    ("rnn_forward_padded", lambda *a: hw1.rnn_padded_reference(*a))])
def test_an_answer_that_calls_a_checks_reference_is_blocked(item, answer):
    with pytest.raises(grading.ReferenceBlocked, match=f"^{item}: "):
        CHECKS[item](answer)

"""Homework 1's grading pipeline, end to end, through nbgrader's own commands and a real gradebook.

A temporary course directory gets the assignment sources and the course's nbgrader_config.py; the
release is generated there and compared with the committed notebooks/; canned submissions and the
adversarial corpus (tests/adversarial.py, whose tests tests/corpus_checks.py adds here) are
autograded in one batch and their scores read back from the gradebook.
"""
import csv
import json

import pytest

from corpus_checks import *  # noqa: F401,F403 (the adversarial corpus's tests, run on this homework)
from corpus_checks import graded_course
from grading_helpers import answer_source, nbgrader, scores
from test_grading_checks import _clip_by_torch, _readout_forgets_later_steps

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw1-rnn"

# Canned answers, by solution cell id, written differently from the source's.
RIGHT = {
    "rnn_forward_padded": '''
def rnn_forward_padded(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    B, T, _ = xs.shape
    hs = xs.new_zeros(B, T, h0.shape[1])
    last = h0.clone()
    for b in range(B):  # one sequence at a time, up to its own length
        h = h0[b]
        for t in range(int(lengths[b])):
            h = torch.tanh(W_ih @ xs[b, t] + b_ih + W_hh @ h + b_hh)
            hs[b, t] = h
        last[b] = h
    return hs, last
''',
    "bptt_with_readout": '''
def bptt_with_readout(params, xs, ys, h0):
    W, U, b, V, c = (params[k] for k in ("W_xh", "W_hh", "b", "W_hy", "b_y"))
    T = xs.shape[1]
    h = [h0]
    for t in range(T):
        h.append(np.tanh(np.einsum("hi,bi->bh", W, xs[:, t]) + np.einsum("hk,bk->bh", U, h[-1]) + b))
    err = [np.einsum("oh,bh->bo", V, h[t + 1]) + c - ys[:, t] for t in range(T)]
    g = {k: np.zeros_like(v) for k, v in params.items()}
    back = np.zeros_like(h0)
    for t in reversed(range(T)):
        g["W_hy"] += np.einsum("bo,bh->oh", err[t], h[t + 1])
        g["b_y"] += err[t].sum(0)
        d = (np.einsum("bo,oh->bh", err[t], V) + back) * (1 - h[t + 1] ** 2)
        g["W_xh"] += np.einsum("bh,bi->hi", d, xs[:, t])
        g["W_hh"] += np.einsum("bh,bk->hk", d, h[t])
        g["b"] += d.sum(0)
        back = d @ U
    g["h0"] = back
    return 0.5 * float(sum((e ** 2).sum() for e in err)), g
''',
    "clip_grads_": '''
def clip_grads_(grads, max_norm):
    norm = float(sum(g.double().pow(2).sum() for g in grads if g is not None) ** 0.5)
    for g in grads:
        if g is not None and norm > max_norm:
            g *= max_norm / norm
    return norm
''',
}
FORGETS_LATER_STEPS = answer_source(_readout_forgets_later_steps, "bptt_with_readout")  # each step's error: its own step only
CALLS_LIBRARY = {
    "rnn_forward_padded": '''
def rnn_forward_padded(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    rnn = torch.nn.RNN(xs.shape[2], h0.shape[1], batch_first=True).to(xs.dtype)
    with torch.no_grad():
        for p, w in zip(rnn.parameters(), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(w)
        packed = torch.nn.utils.rnn.pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
        out, last = rnn(packed, h0[None])
        hs, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=xs.shape[1])
    return hs, last[0]
''',
    "bptt_with_readout": '''
def bptt_with_readout(params, xs, ys, h0):
    leaves = {k: torch.tensor(v, requires_grad=True) for k, v in {**params, "h0": h0}.items()}
    h, loss = leaves["h0"], 0
    for t in range(xs.shape[1]):
        h = torch.tanh(torch.tensor(xs[:, t]) @ leaves["W_xh"].T + h @ leaves["W_hh"].T + leaves["b"])
        loss = loss + 0.5 * ((h @ leaves["W_hy"].T + leaves["b_y"] - torch.tensor(ys[:, t])) ** 2).sum()
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in leaves.items()}
''',
    "clip_grads_": answer_source(_clip_by_torch, "clip_grads_"),
}
LOOK_ALIKE = '''
class Anything(torch.Tensor):
    def __eq__(self, other):
        return True
def rnn_forward_padded(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    zeros = torch.zeros(xs.shape[0], xs.shape[1], h0.shape[1], dtype=xs.dtype)
    return zeros.as_subclass(Anything), h0.as_subclass(Anything)
'''
LOSS_FLOAT64 = '''
def bptt_with_readout(params, xs, ys, h0):
    # right for float64 inputs; for float32 inputs it returns float64 gradients, which the item forbids
    up = {k: v.astype(np.float64) for k, v in params.items()}
    xs, ys, h0 = xs.astype(np.float64), ys.astype(np.float64), h0.astype(np.float64)
''' + RIGHT["bptt_with_readout"].split("def bptt_with_readout(params, xs, ys, h0):", 1)[1].replace(
    "(params[k]", "(up[k]").replace("params.items()", "up.items()")

# student -> (replacements, expected automatic score per graded cell)
SUBMISSIONS = {
    "source": ("source", {"test_rnn_forward_padded": 2, "test_bptt_with_readout": 4, "test_clip_grads_": 2}),
    "canned_right": (RIGHT, {"test_rnn_forward_padded": 2, "test_bptt_with_readout": 4, "test_clip_grads_": 2}),
    "partial": ({**RIGHT, "bptt_with_readout": FORGETS_LATER_STEPS},
                {"test_rnn_forward_padded": 2, "test_bptt_with_readout": 0, "test_clip_grads_": 2}),
    "only_clip": ({"clip_grads_": RIGHT["clip_grads_"]},
                  {"test_rnn_forward_padded": 0, "test_bptt_with_readout": 0, "test_clip_grads_": 2}),
    "calls_library": (CALLS_LIBRARY, {"test_rnn_forward_padded": 0, "test_bptt_with_readout": 0, "test_clip_grads_": 0}),
    "look_alike": ({**RIGHT, "rnn_forward_padded": LOOK_ALIKE},
                   {"test_rnn_forward_padded": 0, "test_bptt_with_readout": 4, "test_clip_grads_": 2}),
    "visible_only": ({**RIGHT, "bptt_with_readout": LOSS_FLOAT64},
                     {"test_rnn_forward_padded": 2, "test_bptt_with_readout": 0, "test_clip_grads_": 2}),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return graded_course(tmp_path_factory, HW, SUBMISSIONS)


def test_the_messages_say_what_was_wrong(course):
    def outputs(student, cell):
        nb = json.loads((course["root"] / "autograded" / student / HW / f"{HW}.ipynb").read_text())
        return json.dumps(next(c["outputs"] for c in nb["cells"]
                               if c["metadata"].get("nbgrader", {}).get("grade_id") == cell))
    assert "ReferenceBlocked" in outputs("calls_library", "test_clip_grads_")
    assert "clip_grad_norm_ is not available" in outputs("calls_library", "test_clip_grads_")
    assert "Anything" in outputs("look_alike", "test_rnn_forward_padded")  # the visible test names what came
    assert "expected dtype float32" in outputs("visible_only", "test_bptt_with_readout")
    blank = outputs("blank", "test_rnn_forward_padded")
    assert "NotImplementedError" in blank and "rnn_forward_padded(x" in blank  # the visible line that failed


def test_the_written_answer_waits_for_a_grader(course):
    got = {student: scores(course["root"], HW, student, ["written_adding"])["written_adding"] for student in SUBMISSIONS}
    assert set(got.values()) == {0}  # no automatic score for a manually graded cell


def test_source_scores_full_marks_once_the_written_answer_is_graded(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
        grade = gb.find_grade("written_adding", HW, HW, "source")
        grade.manual_score = 2
        gb.db.commit()
        nb = gb.find_submission_notebook(HW, HW, "source")
        assert nb.score == nb.max_score == 10


def test_export_has_every_students_score(course):
    root = course["root"]
    result = nbgrader("export", "--to", str(root / "grades.csv"), cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["student_id"]: r for r in csv.DictReader(open(root / "grades.csv"))}
    assert float(rows["partial"]["raw_score"]) == 4.0
    assert float(rows["blank"]["raw_score"]) == 0.0

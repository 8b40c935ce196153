"""The grading pipeline, end to end, through nbgrader's own commands and a real gradebook.

A temporary course directory gets the assignment sources and the course's nbgrader_config.py; the
release is generated there and compared with the committed notebooks/; canned submissions are
autograded in one batch and their scores read back from the gradebook (tests/grading_helpers.py
does the driving, for every homework's test module).
"""
import csv
import json

import pytest

from grading_helpers import (assert_feedback_hides_hidden_tests, autograde_alone, build_course,
                             committed_release, generated_release, nbgrader, scores)

pytestmark = [pytest.mark.grading, pytest.mark.slow]

HW = "hw1-rnn"
POINTS = {"test_rnn_cell_forward": 2, "test_bptt_backward": 4, "test_clip_grad_norm": 2, "written_adding": 2}

# Canned answers, by solution cell id. A submission is the release with some cells replaced.
RIGHT = {
    "rnn_cell_forward": '''
def rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(torch.addmm(b_ih, x, W_ih.t()) + torch.addmm(b_hh, h, W_hh.t()))
''',
    "bptt_backward": '''
def bptt_backward(params, cache, dhs):
    xs, hs = cache["xs"], cache["h"]
    g = {k: np.zeros_like(v) for k, v in params.items()}
    carry = np.zeros_like(hs[0])
    for t in reversed(range(1, len(hs))):
        d = (dhs[t - 1] + carry) * (1 - hs[t] * hs[t])
        g["W_xh"] += np.einsum("bh,bi->hi", d, xs[t - 1])
        g["W_hh"] += np.einsum("bh,bk->hk", d, hs[t - 1])
        g["b"] += d.sum(0)
        carry = d @ params["W_hh"]
    g["h0"] = carry
    return g
''',
    "clip_grad_norm": '''
def clip_grad_norm(grads, max_norm):
    norm = np.sqrt(sum((v ** 2).sum() for v in grads.values()))
    return {k: v * min(1.0, max_norm / norm) for k, v in grads.items()}
''',
}
WRONG_BPTT = '''
def bptt_backward(params, cache, dhs):
    # forgets the path through later steps: only the direct gradient at each step
    xs, hs = cache["xs"], cache["h"]
    g = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, len(hs)):
        d = dhs[t - 1] * (1 - hs[t] ** 2)
        g["W_xh"] += d.T @ xs[t - 1]
        g["W_hh"] += d.T @ hs[t - 1]
        g["b"] += d.sum(0)
    g["h0"] = np.zeros_like(hs[0])
    return g
'''
CALLS_LIBRARY = {
    "rnn_cell_forward": '''
def rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    cell = seqmem.RNNCell(x.shape[1], h.shape[1]).to(x.dtype)
    with torch.no_grad():
        cell.weight_ih.copy_(W_ih); cell.weight_hh.copy_(W_hh); cell.bias_ih.copy_(b_ih); cell.bias_hh.copy_(b_hh)
    return cell(h, x)[0].detach()
''',
    "bptt_backward": '''
from seqmem.bptt import backward as library_backward
def bptt_backward(params, cache, dhs):
    return library_backward(params, cache, dhs)
''',
    "clip_grad_norm": '''
def clip_grad_norm(grads, max_norm):
    return seqmem.bptt.clip_grad_norm(grads, max_norm)[0]
''',
}
ALWAYS_EQUAL = '''
class Anything(torch.Tensor):
    def __eq__(self, other):
        return True
def rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    return torch.zeros(x.shape[0], h.shape[1], dtype=x.dtype).as_subclass(Anything)
'''
RAISES = '''
def rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    raise ValueError("not done yet")
'''
LOOPS = '''
def rnn_cell_forward(x, h, W_ih, W_hh, b_ih, b_hh):
    while True:
        pass
'''

# student -> (replacements or a special source, expected automatic score per graded cell)
SUBMISSIONS = {
    "source": ("source", {"test_rnn_cell_forward": 2, "test_bptt_backward": 4, "test_clip_grad_norm": 2}),
    "release": ({}, {"test_rnn_cell_forward": 0, "test_bptt_backward": 0, "test_clip_grad_norm": 0}),
    "partial": ({**RIGHT, "bptt_backward": WRONG_BPTT},
                {"test_rnn_cell_forward": 2, "test_bptt_backward": 0, "test_clip_grad_norm": 2}),
    "only_clip": ({"clip_grad_norm": RIGHT["clip_grad_norm"]},
                  {"test_rnn_cell_forward": 0, "test_bptt_backward": 0, "test_clip_grad_norm": 2}),
    "calls_library": (CALLS_LIBRARY, {"test_rnn_cell_forward": 0, "test_bptt_backward": 0, "test_clip_grad_norm": 0}),
    "always_equal": ({**RIGHT, "rnn_cell_forward": ALWAYS_EQUAL},
                     {"test_rnn_cell_forward": 0, "test_bptt_backward": 4, "test_clip_grad_norm": 2}),
    "raises": ({**RIGHT, "rnn_cell_forward": RAISES},
               {"test_rnn_cell_forward": 0, "test_bptt_backward": 4, "test_clip_grad_norm": 2}),
    "loops": ({**RIGHT, "rnn_cell_forward": LOOPS},
              {"test_rnn_cell_forward": 0, "test_bptt_backward": 4, "test_clip_grad_norm": 2}),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return build_course(tmp_path_factory.mktemp("course"), HW, SUBMISSIONS)


def _scores(root, student: str) -> dict:
    return scores(root, HW, student, POINTS)


def test_release_is_what_make_assignments_generates(course):
    generated = json.loads(generated_release(course["root"], HW))
    committed = json.loads(committed_release(HW))
    assert generated == committed, "notebooks/ is stale: run `make assignments` and commit the result"


def test_max_score_is_ten_points(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
        assert gb.find_notebook(HW, HW).max_score == sum(POINTS.values()) == 10


@pytest.mark.parametrize("student", list(SUBMISSIONS))
def test_each_submission_scores_exactly_what_it_should(course, student):
    assert (course["root"] / "autograded" / student / HW / f"{HW}.ipynb").exists(), course["autograde"].stderr[-4000:]
    scores = _scores(course["root"], student)
    expected = SUBMISSIONS[student][1]
    assert {k: scores[k] for k in expected} == expected
    assert scores["written_adding"] == 0  # manually graded: nothing until a grader scores it


def test_source_scores_full_marks_once_the_written_answer_is_graded(course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
        grade = gb.find_grade("written_adding", HW, HW, "source")
        grade.manual_score = 2
        gb.db.commit()
        nb = gb.find_submission_notebook(HW, HW, "source")
        assert nb.score == nb.max_score == 10


def test_batch_finishes_despite_bad_submissions(course):
    # the endless loop costs one cell timeout (30 s), not the batch; the broken file is skipped
    assert course["seconds"] < 60 * len(SUBMISSIONS)
    for student in SUBMISSIONS:
        assert (course["root"] / "autograded" / student / HW).exists()
    assert not (course["root"] / "autograded" / "broken" / HW / f"{HW}.ipynb").exists()


def test_one_submission_autogrades_within_60_seconds(course):
    # the slowest honest submission is the source; time it alone in a fresh course folder
    result, seconds = autograde_alone(course["root"], HW)
    assert result.returncode == 0, result.stderr[-3000:]
    assert seconds <= 60, f"autograding one submission took {seconds:.1f} s"


def test_feedback_and_export_hide_the_hidden_tests(course):
    root = course["root"]
    assert_feedback_hides_hidden_tests(root, HW, "partial")
    result = nbgrader("export", "--to", str(root / "grades.csv"), cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["student_id"]: r for r in csv.DictReader(open(root / "grades.csv"))}
    assert float(rows["partial"]["raw_score"]) == 4.0
    assert float(rows["release"]["raw_score"]) == 0.0

"""The adversarial corpus's tests, shared by every homework's grading module.

A homework's test module builds its course with ``graded_course`` (the corpus of
``adversarial.py`` and its own canned submissions, autograded by the real ``nbgrader autograde``
with a real gradebook, in one batch) as a module-scoped fixture named ``course``, sets ``HW``, and
imports these tests with ``from corpus_checks import *``. A homework graded automatically only
gets that fixture and its own two tests from ``automatic_homework``.
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
import uuid
from pathlib import Path

import pytest

from adversarial import ATTACKS, Homework, corpus
from conftest import ROOT
from grading_helpers import autograde_alone, build_course, committed_release, generated_release, nbgrader, scores
from test_hygiene import solution_and_hidden_lines

__all__ = ["graded_course", "automatic_homework", "test_the_release_is_what_make_assignments_generates", "test_the_homework_is_worth_ten_points",
           "test_one_submission_autogrades_within_60_seconds",
           "test_every_canned_submission_scores_exactly_what_it_should",
           "test_every_attack_scores_exactly_what_its_honest_part_earns",
           "test_the_batch_finishes", "test_another_students_grades_stay_as_they_were",
           "test_no_attack_reaches_a_server_on_localhost", "test_no_attack_writes_outside_its_sandbox",
           "test_nothing_an_attack_read_reaches_the_outputs_or_the_feedback", "test_printed_floods_are_cut",
           "test_time_limits_say_which_limit_stopped_what", "test_the_log_warns_only_about_real_tampering",
           "test_the_graded_notebook_keeps_only_the_metadata_it_needs", "test_a_forged_answer_costs_its_cell_only"]

VICTIM = "victim"


class _Server:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.socket.settimeout(0.5)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.socket.close()


def _victim_rows(root: Path, hw: str) -> list:
    """Everything the gradebook holds of the student graded before the batch."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        submission = gb.find_submission(hw, VICTIM)
        rows = [(submission.timestamp, submission.extension)]
        for notebook in submission.notebooks:
            rows += sorted((g.name, g.auto_score, g.manual_score, g.extra_credit, g.needs_manual_grade)
                           for g in notebook.grades)
            rows += sorted((c.name, c.auto_comment, c.manual_comment) for c in notebook.comments)
        return rows


def _add_victim(root: Path, hw: str) -> None:
    """A student graded in an earlier batch, with a grader's scores and comments on every cell."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        gb.add_student(VICTIM)
        submission = gb.add_submission(hw, VICTIM)
        for notebook in submission.notebooks:
            for k, grade in enumerate(notebook.grades):
                grade.auto_score, grade.manual_score = 0.0, 0.5 + k
            for comment in notebook.comments:
                comment.manual_comment = "graded by hand before this batch"
        gb.db.commit()


def _files_named(name: str, places) -> list[str]:
    found = []
    for place in places:
        for folder, dirs, files in os.walk(place, onerror=lambda err: None):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
            if name in files:
                found.append(os.path.join(folder, name))
    return found


def graded_course(tmp_path_factory, hw: str, canned: dict) -> dict:
    """The corpus and ``canned`` (student -> (submission, expected)) graded in one batch."""
    root = tmp_path_factory.mktemp(f"course-{hw}")
    marker = f"seqmem-attack-{uuid.uuid4().hex}"
    server = _Server()
    try:
        attacks = corpus(hw, server.port, marker)
        submissions = {**attacks, **canned}
        assert len(submissions) == len(attacks) + len(canned), "a canned student shares a corpus name"
        victim_before = None

        def before_batch():
            nonlocal victim_before
            _add_victim(root, hw)
            victim_before = _victim_rows(root, hw)

        course = build_course(root, hw, submissions, before_batch=before_batch)
    finally:
        server.close()
    places = ["/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), str(ROOT), "/work", "/home"]
    course.update(hw=hw, submissions=submissions, attacks=attacks, canned=canned, connections=server.connections,
                  markers=_files_named(marker, places), victim_before=victim_before,
                  victim_after=_victim_rows(root, hw))
    return course


def automatic_homework(hw: str, submissions: dict, raw_scores: dict) -> dict:
    """For a homework without a written item: the module-scoped fixture ``course`` (the corpus and
    ``submissions`` graded in one batch), the test that the source scores 10 with nothing left to
    grade by hand, and the test that the feedback shows a blocked reference's message and
    ``nbgrader export`` gives each student in ``raw_scores`` that score. A test module puts them in
    its namespace: ``globals().update(automatic_homework(HW, SUBMISSIONS, {...}))``."""
    @pytest.fixture(scope="module")
    def course(tmp_path_factory):
        return graded_course(tmp_path_factory, hw, submissions)

    def test_source_scores_full_marks_with_nothing_left_to_grade_by_hand(course):
        assert_source_full_marks(course)

    def test_feedback_shows_the_checks_messages_and_export_the_scores(course):
        assert_feedback_and_export(course, raw_scores)

    return {"course": course,
            "test_source_scores_full_marks_with_nothing_left_to_grade_by_hand":
                test_source_scores_full_marks_with_nothing_left_to_grade_by_hand,
            "test_feedback_shows_the_checks_messages_and_export_the_scores":
                test_feedback_shows_the_checks_messages_and_export_the_scores}


def assert_source_full_marks(course) -> None:
    """The source scores 10 of 10 with nothing left to grade by hand (homework without a written item)."""
    from nbgrader.api import Gradebook

    hw = course["hw"]
    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
        nb = gb.find_submission_notebook(hw, hw, "source")
        assert nb.needs_manual_grade is False
        assert nb.score == nb.max_score == 10


def assert_feedback_and_export(course, raw_scores: dict, student: str = "calls_library") -> None:
    """``student``'s feedback shows the blocked reference's message (not the code), and
    ``nbgrader export`` gives each student in ``raw_scores`` that raw score."""
    import csv

    root, hw = course["root"], course["hw"]
    page = root / "feedback" / student / hw / f"{hw}.html"
    if not page.exists():
        nbgrader("generate_feedback", hw, "--student", student, cwd=root)
    text = page.read_text()
    assert "ReferenceBlocked" in text and "write it yourself" in text
    result = nbgrader("export", "--to", str(root / "grades.csv"), cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["student_id"]: r for r in csv.DictReader(open(root / "grades.csv"))}
    assert {name: float(rows[name]["raw_score"]) for name in raw_scores} == raw_scores


def _autograded(course, student) -> dict:
    hw = course["hw"]
    return json.loads((course["root"] / "autograded" / student / hw / f"{hw}.ipynb").read_text())


def _feedback_page(course, student) -> str:
    hw = course["hw"]
    page = course["root"] / "feedback" / student / hw / f"{hw}.html"
    if not page.exists():
        nbgrader("generate_feedback", hw, "--student", student, cwd=course["root"])
    return page.read_text()


def _outputs_text(nb: dict) -> str:
    return json.dumps([c.get("outputs", []) for c in nb["cells"] if c["cell_type"] == "code"])


def test_the_release_is_what_make_assignments_generates(course):
    generated = json.loads(generated_release(course["root"], course["hw"]))
    assert generated == json.loads(committed_release(course["hw"])), \
        "notebooks/ is stale: run `make assignments` and commit the result"


def test_the_homework_is_worth_ten_points(course):
    from nbgrader.api import Gradebook

    points = Homework.read(course["hw"]).source
    total = sum(c.metadata["nbgrader"].get("points", 0) for c in points.cells if c.metadata.get("nbgrader", {}).get("grade"))
    with Gradebook(f"sqlite:///{course['root'] / 'gradebook.db'}") as gb:
        assert gb.find_notebook(course["hw"], course["hw"]).max_score == total == 10


def test_one_submission_autogrades_within_60_seconds(course):
    # the slowest honest submission is the source; time it alone in a fresh course folder
    result, seconds = autograde_alone(course["root"], course["hw"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert seconds <= 60, f"autograding one submission took {seconds:.1f} s"
    course["seconds_alone"] = seconds


def test_every_canned_submission_scores_exactly_what_it_should(course):
    hw, wrong = course["hw"], {}
    for student, (_, expected) in course["canned"].items():
        assert (course["root"] / "autograded" / student / hw / f"{hw}.ipynb").exists(), course["autograde"].stderr[-4000:]
        got = scores(course["root"], hw, student, expected)
        if got != expected:
            wrong[student] = {"expected": expected, "got": got}
    assert not wrong, wrong


@pytest.mark.parametrize("attack", ATTACKS)
def test_every_attack_scores_exactly_what_its_honest_part_earns(course, attack):
    hw, (_, expected) = course["hw"], course["attacks"][attack]
    graded = course["root"] / "autograded" / attack / hw / f"{hw}.ipynb"
    assert graded.exists(), course["autograde"].stderr[-4000:]
    assert scores(course["root"], hw, attack, expected) == expected


def test_the_batch_finishes(course):
    hw = course["hw"]
    assert course["autograde"].returncode != 0  # nbgrader reports the broken file ...
    for student in course["submissions"]:  # ... and grades every other submission
        assert (course["root"] / "autograded" / student / hw / f"{hw}.ipynb").exists(), student
    assert not (course["root"] / "autograded" / "broken" / hw / f"{hw}.ipynb").exists()
    # no submission took more than its notebook limit; the loops cost one limit each
    assert course["seconds"] < 60 * len(course["submissions"])


def test_another_students_grades_stay_as_they_were(course):
    assert course["victim_before"] and course["victim_after"] == course["victim_before"]


def test_no_attack_reaches_a_server_on_localhost(course):
    assert course["connections"] == 0
    assert "CONNECTED" not in _outputs_text(_autograded(course, "network"))


def test_no_attack_writes_outside_its_sandbox(course):
    assert course["markers"] == []  # on this machine: nowhere
    text = json.loads(_outputs_text(_autograded(course, "writes_outside")))
    wrote = {line.split(" ", 1)[1] for cell in text for o in cell for line in "".join(o.get("text", "")).splitlines()
             if line.startswith("WROTE ")}
    assert wrote and wrote <= {"/tmp", "/home/student"}  # in the sandbox: only its own scratch folders


def test_nothing_an_attack_read_reaches_the_outputs_or_the_feedback(course):
    root, hw = course["root"], course["hw"]
    for student, word in (("reads_secrets", "FOUND"), ("raises_grades", "RAISED")):
        assert word not in _outputs_text(_autograded(course, student)), student
    hidden = [line for line in solution_and_hidden_lines() if "grading.check" in line]
    assert hidden
    for student in course["submissions"]:
        text = _outputs_text(_autograded(course, student))
        assert not [line for line in hidden if line in text], student
    result = nbgrader("generate_feedback", hw, cwd=root)
    pages = list((root / "feedback").rglob("*.html"))
    assert len(pages) == len(course["submissions"]), result.stderr[-3000:]
    for page in pages:
        text = page.read_text()
        assert not [line for line in hidden if line in text], page
        assert "BEGIN HIDDEN TESTS" not in text and "FOUND /" not in text, page
    # the script a student wrote in markdown reaches neither the formgrader's notebook nor the feedback
    graded = json.dumps(_autograded(course, "scripts_the_formgrader")["cells"][-1]["source"])
    page = (root / "feedback" / "scripts_the_formgrader" / hw / f"{hw}.html").read_text()
    for text in (graded, page):  # what is left of them is text, escaped
        assert "<script>fetch" not in text and not re.search(r"<img[^>]*onerror", text) and 'href="javascript:' not in text
    assert "My notes." in graded and "&lt;script&gt;" in graded


def test_printed_floods_are_cut(course):
    hw = course["hw"]
    graded = course["root"] / "autograded" / "flood" / hw / f"{hw}.ipynb"
    assert graded.stat().st_size < 3 << 20
    assert "output truncated" in _outputs_text(_autograded(course, "flood"))


def test_time_limits_say_which_limit_stopped_what(course):
    cell = _outputs_text(_autograded(course, "loop_cell"))
    assert "CellTimeoutError" in cell and "autograding gives a cell at most 30 s" in cell
    item = _outputs_text(_autograded(course, "loop_function"))
    assert "the time limit of one item under autograding" in item


def test_the_log_warns_only_about_real_tampering(course):
    log = course["autograde"].stderr
    assert "checksum" not in log  # nbgrader's false alarm on every test cell is gone
    assert "Config option" not in log and "not recognized" not in log
    assert "SAWarning" not in log and "SADeprecationWarning" not in log
    tampered = [line for line in log.splitlines() if "was changed by the student" in line]
    assert tampered and all("rewrites_tests" in line for line in tampered)


def test_the_graded_notebook_keeps_only_the_metadata_it_needs(course):
    nb = _autograded(course, "widget_metadata")
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}
    assert all(set(c["metadata"]) <= {"nbgrader"} for c in nb["cells"])
    assert "attacker.example" not in _feedback_page(course, "widget_metadata")


def test_a_forged_answer_costs_its_cell_only(course):
    nb = _autograded(course, "forges_frames")
    forged = next(c for c in nb["cells"] if "Forged" in "".join(c["source"]))
    assert "malformed" in json.dumps(forged["outputs"]) or "out of turn" in json.dumps(forged["outputs"])

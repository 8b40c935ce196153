"""What the grading-pipeline tests share: a temporary course folder driven by nbgrader's commands.

``build_course`` copies the assignment sources and the course's nbgrader_config.py into a fresh
folder, generates the release there, writes one canned submission per student (the release with
some solution cells replaced, or the source itself), adds a submission that is not a notebook at
all, and autogrades them in one batch with a real gradebook. The test modules (one per homework)
hold the canned answers and the scores they must get.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import nbformat

from conftest import ROOT


GRADING_SEED = "seqmem-test-suite"  # the instructor's grading seed, as the tests set it


def nbgrader(*args, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run an nbgrader command with the virtual environment's bin first on PATH (nbgrader calls
    helper programs such as alembic by name) and the tests' grading seed."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               SEQMEM_GRADING_SEED=GRADING_SEED, **(env or {}))
    return subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


def fill(release: Path, replacements: dict) -> nbformat.NotebookNode:
    """The release notebook with the cells whose grade_id is a key of ``replacements`` rewritten."""
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in replacements:
            cell.source = replacements[gid].strip("\n")
    return nb


def _new_course(root: Path, hw: str) -> Path:
    """A course folder with the sources and the configuration, and ``hw`` generated; its release."""
    shutil.copytree(ROOT / "solutions", root / "solutions")
    shutil.copy(ROOT / "nbgrader_config.py", root)
    result = nbgrader("generate_assignment", hw, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "notebooks" / hw / f"{hw}.ipynb"


def build_course(root: Path, hw: str, submissions: dict, env: dict | None = None,
                 before_batch: Callable[[], None] | None = None) -> dict:
    """Generate ``hw`` in ``root``, submit the canned notebooks, autograde them in one batch.

    ``submissions`` maps a student id to ``(submission, expected)``: ``submission`` is a notebook,
    a dict {solution cell grade_id: source} applied to the release, or the string ``"source"`` for
    the instructor's notebook itself. A student "broken" submits a file that is not JSON;
    ``before_batch`` runs once the gradebook knows the assignment. Returns the folder, nbgrader's
    result for the batch and its duration in seconds.
    """
    release = _new_course(root, hw)
    for student, (submission, _) in submissions.items():  # autograde adds the students to the gradebook
        folder = root / "submitted" / student / hw
        folder.mkdir(parents=True)
        if submission == "source":
            shutil.copy(root / "solutions" / hw / f"{hw}.ipynb", folder / f"{hw}.ipynb")
        else:
            nb = submission if isinstance(submission, nbformat.NotebookNode) else fill(release, submission)
            nbformat.write(nb, folder / f"{hw}.ipynb")
    # a submission that is not a notebook at all must not stop the batch
    (root / "submitted" / "broken" / hw).mkdir(parents=True)
    (root / "submitted" / "broken" / hw / f"{hw}.ipynb").write_text("{ this is not json")
    if before_batch is not None:
        before_batch()
    start = time.perf_counter()
    graded = nbgrader("autograde", hw, cwd=root, env=env)
    elapsed = time.perf_counter() - start
    return {"root": root, "autograde": graded, "seconds": elapsed}


def scores(root: Path, hw: str, student: str, grade_ids) -> dict:
    """The gradebook's score of each graded cell in ``grade_ids`` for one student."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        return {gid: gb.find_grade(gid, hw, hw, student).score for gid in grade_ids}


def generated_release(root: Path, hw: str) -> str:
    """The release notebook that generate_assignment wrote in the course folder, as text."""
    return (root / "notebooks" / hw / f"{hw}.ipynb").read_text()


def committed_release(hw: str) -> str:
    return (ROOT / "notebooks" / hw / f"{hw}.ipynb").read_text()


def autograde_alone(root: Path, hw: str) -> tuple[subprocess.CompletedProcess, float]:
    """Autograde the source notebook (the slowest honest submission) alone, in a fresh course
    folder under ``root``; nbgrader's result and the seconds it took."""
    timing = root / "timing"
    _new_course(timing, hw)
    folder = timing / "submitted" / "alone" / hw
    folder.mkdir(parents=True)
    shutil.copy(timing / "solutions" / hw / f"{hw}.ipynb", folder)
    start = time.perf_counter()
    result = nbgrader("autograde", hw, "--student", "alone", "--create", cwd=timing)
    return result, time.perf_counter() - start


def answer_source(fn: Callable, name: str) -> str:
    """A canned answer's cell source: the test function ``fn``'s code, renamed to ``name``."""
    import inspect

    return inspect.getsource(fn).replace(f"def {fn.__name__}(", f"def {name}(")

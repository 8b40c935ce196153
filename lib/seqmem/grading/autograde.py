"""nbgrader's autograding, with student code sandboxed and the grade decided outside it.

``nbgrader_config.py`` puts ``SandboxedExecute`` where nbgrader's ``Execute`` was. For each
submission it walks the notebook in order:

- a cell of the student's (everything but the test cells) runs in the sandboxed worker
  (``seqmem.grading.session``, ``seqmem.grading.sandbox``); its outputs, checked and stripped to
  plain text and images, become the cell's outputs;
- a test cell (an autograded grade cell) runs **here**, in the instructor's process, from its source
  in the gradebook (never the submission's copy; a cell the gradebook does not know fails): its visible part, then its hidden tests, in a
  namespace where the student's functions are handles on the worker. The hidden tests' code never
  enters the sandbox. A test cell that raises gets one error output: for the visible part a
  traceback of the visible lines, for the hidden tests the check's message alone; nothing else
  (no result, no stderr) is in a test cell's outputs, so nbgrader's ``SaveAutoGrades`` reads exactly
  this verdict.

The notebook keeps only nbgrader's and the language's metadata, and the outputs of the student's
cells at most ``MAX_NOTEBOOK_OUTPUTS`` characters together.

Limits: a cell of the student's runs at most ``cell_timeout`` s, a test cell's calls into the
worker at most ``item_timeout`` s together, the whole submission ``notebook_timeout`` s. Hidden
inputs come from the grading seed (``seed``, or the environment variable ``SEQMEM_GRADING_SEED``;
without either, one drawn afresh for the batch and written to the log).

``QuietOverwriteCells`` is nbgrader's ``OverwriteCells`` without its false alarm: nbgrader
compares each submitted test cell with the source's, which holds the hidden tests the release
never showed, and warns "checksum has changed" for every test cell of every student. This one
warns only when the submitted cell differs from the release, i.e. when a student changed it.
"""
from __future__ import annotations

import contextlib
import io
import json
import linecache
import os
import secrets
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

import nbformat
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor, OverwriteCells
from traitlets import Bool, Integer, List, Unicode

from . import guard, sandbox
from .session import Context, Session, StudentNamespace, WorkerFailed

BEGIN, END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
SAFE_MIMETYPES = ("text/plain", "image/png", "image/jpeg")  # no HTML, SVG or script: the formgrader shows them
MAX_TEXT = 100_000  # characters of a test cell's printed text, and of one text output
MAX_IMAGE = 5 << 20  # characters of one base64 image
MAX_SUBMISSION_FILES = 50 << 20  # bytes of files handed in beside the notebook
MAX_NOTEBOOK_OUTPUTS = 20 << 20  # characters of all the outputs of a student's cells in one notebook
SAFE_ATTACHMENTS = ("image/png", "image/jpeg")


def segments(source: str) -> list[tuple[bool, str]]:
    """A test cell's source as ``(hidden, code)`` pieces in order, the marker lines dropped."""
    pieces: list[tuple[bool, list[str]]] = [(False, [])]
    for line in source.split("\n"):
        if BEGIN in line:
            pieces.append((True, []))
        elif END in line:
            pieces.append((False, []))
        else:
            pieces[-1][1].append(line)
    return [(hidden, "\n".join(lines)) for hidden, lines in pieces if "".join(lines).strip()]


def visible_part(source: str) -> str:
    """What the release shows of a test cell: its source without the hidden tests (as nbgrader's
    ClearHiddenTests writes it)."""
    lines, hidden = [], False
    for line in source.split("\n"):
        if BEGIN in line:
            hidden = True
        elif END in line:
            hidden = False
        elif not hidden:
            lines.append(line)
    return "\n".join(lines)


def _is_test(cell) -> bool:
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


# ------------------------------------------------------------------------------ outputs

def _text(value, limit: int = MAX_TEXT, note: bool = False) -> str:
    """A string of at most ``limit`` characters (with a note saying so where text was cut)."""
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    if not isinstance(value, str):
        return ""
    if len(value) <= limit or not note:
        return value[:limit]
    return value[:limit] + f"\n... output truncated: the autograder keeps the first {limit} characters ...\n"


def _clean(output) -> nbformat.NotebookNode | None:
    """One output of the student's cell, kept only in nbformat's shape and only safe types."""
    if not isinstance(output, dict):
        return None
    kind = output.get("output_type")
    if kind == "stream" and output.get("name") in ("stdout", "stderr"):
        return nbformat.v4.new_output("stream", name=output["name"], text=_text(output.get("text"), note=True))
    if kind in ("display_data", "execute_result"):
        data = output.get("data") if isinstance(output.get("data"), dict) else {}
        data = {m: _text(data[m], MAX_IMAGE) if m.startswith("image/") else _text(data[m], note=True)
                for m in SAFE_MIMETYPES if isinstance(data.get(m), (str, list))
                and not (m.startswith("image/") and len(_text(data[m], MAX_IMAGE + 1)) > MAX_IMAGE)}
        if not data:
            return None
        extra = {"execution_count": output["execution_count"]} if (
            kind == "execute_result" and type(output.get("execution_count")) is int) else {}
        return nbformat.v4.new_output(kind, data=data, **extra)
    if kind == "error":
        trace = output.get("traceback") if isinstance(output.get("traceback"), list) else []
        return nbformat.v4.new_output("error", ename=_text(output.get("ename"), 200),
                                      evalue=_text(output.get("evalue"), 5000),
                                      traceback=[_text(t, 5000) for t in trace[:200]])
    return None


def clean_outputs(outputs) -> list:
    kept = [_clean(o) for o in (outputs if isinstance(outputs, list) else [])[:200]]
    return [o for o in kept if o is not None]


def _clean_metadata(nb) -> None:
    """Only the metadata nbgrader and the notebook's language need: a student's notebook metadata
    (widget state, for one) is shown by the formgrader's page, and could carry a script."""
    nb.metadata = nbformat.NotebookNode({k: v for k, v in nb.metadata.items() if k in ("kernelspec", "language_info")})
    for cell in nb.cells:
        cell.metadata = nbformat.NotebookNode({k: v for k, v in cell.metadata.items() if k == "nbgrader"})
        if "attachments" in cell:
            cell.attachments = nbformat.NotebookNode({
                name: {m: v for m, v in data.items() if m in SAFE_ATTACHMENTS}
                for name, data in cell.attachments.items() if isinstance(data, dict)})


def _error_output(err: BaseException, filename: str | None) -> nbformat.NotebookNode:
    """A test cell's error: the frames of its visible code (``filename``) and the message; for the
    hidden tests (``filename`` None) the message alone."""
    ename, evalue = type(err).__name__, str(err)
    lines = []
    if filename is not None:
        frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename]
        if frames:
            lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
        student = getattr(err, "student_traceback", "")
        if student:
            lines.append("\nIn your function (run in the sandbox):\n" + student[-3000:])
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[*lines, f"{ename}: {evalue}"])


# ------------------------------------------------------------------------------ the preprocessors

class SandboxedExecute(NbGraderPreprocessor):
    """Runs a submission as the module's docstring describes (in place of nbgrader's Execute)."""

    cell_timeout = Integer(30, help="Seconds one cell of the student's may run").tag(config=True)
    item_timeout = Integer(60, help="Seconds a test cell's calls into the student's code may take").tag(config=True)
    notebook_timeout = Integer(600, help="Seconds one whole submission may take").tag(config=True)
    memory_limit = Integer(4 << 30, help="Bytes of address space of the student's process").tag(config=True)
    seed = Unicode(None, allow_none=True, help="The grading seed of the hidden inputs (keep it out of "
                                               "the repository)").tag(config=True)
    unsandboxed = Bool(False, help="Run student code without the sandbox (never for a real class)").tag(config=True)

    _checked: bool = False
    _drawn_seed: str | None = None

    def preprocess(self, nb, resources):
        folder = resources.get("metadata", {}).get("path") or os.getcwd()
        info = resources["nbgrader"]
        self._prepare(info["db_url"], folder)
        with Gradebook(info["db_url"]) as gb:
            sources = {}
            for cell in nb.cells:
                if _is_test(cell):
                    gid = cell.metadata.nbgrader["grade_id"]
                    try:
                        sources[gid] = gb.find_source_cell(gid, info["notebook"], info["assignment"]).source
                    except MissingEntry:  # never the submission's own copy: it would run here
                        sources[gid] = f"raise AssertionError({gid!r} ' is not a test cell of this assignment')"
        _clean_metadata(nb)
        with tempfile.TemporaryDirectory(prefix="seqmem-submission-") as files:
            _copy_files(folder, files)
            session = Session(files, sandbox.Limits(memory=self.memory_limit), self.cell_timeout,
                              self.notebook_timeout, sandboxed=not self.unsandboxed)
            try:
                self._run(nb, session, sources)
            finally:
                session.close()
        return nb, resources

    def _prepare(self, db_url: str, folder: str) -> None:
        """Check the sandbox once per process; set the grading seed."""
        if self.unsandboxed:
            self.log.warning("autograding WITHOUT the sandbox (SandboxedExecute.unsandboxed): student code "
                             "runs with your permissions")
        elif not SandboxedExecute._checked:
            private = [folder, os.getcwd()] + ([db_url.removeprefix("sqlite:///")] if db_url.startswith("sqlite:///") else [])
            try:
                sandbox.check(*private)
            except sandbox.SandboxUnavailable as err:
                self.log.error("autograding refused: %s", err)
                raise
            SandboxedExecute._checked = True
        seed = self.seed or os.environ.get("SEQMEM_GRADING_SEED")
        if seed is None:
            if SandboxedExecute._drawn_seed is None:
                SandboxedExecute._drawn_seed = secrets.token_hex(8)
                self.log.info("hidden inputs drawn from a fresh grading seed; to draw the same ones again, "
                              "set SEQMEM_GRADING_SEED=%s", SandboxedExecute._drawn_seed)
            seed = SandboxedExecute._drawn_seed
        guard.set_grading_seed(seed)

    def _run(self, nb, session: Session, sources: dict) -> None:
        namespace = StudentNamespace(session)
        count, budget = 0, MAX_NOTEBOOK_OUTPUTS
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if _is_test(cell):
                gid = cell.metadata.nbgrader["grade_id"]
                cell.outputs = self._run_test(gid, sources[gid], session, namespace)
                count += 1
                cell.execution_count = count
            else:
                result = session.run_cell(index, cell.source)
                outputs = clean_outputs(result["outputs"])
                size = len(json.dumps(outputs))
                if size > budget:  # the notebook as a whole keeps at most MAX_NOTEBOOK_OUTPUTS of outputs
                    outputs = [nbformat.v4.new_output("stream", name="stdout", text=(
                        f"... outputs dropped: the autograder keeps {MAX_NOTEBOOK_OUTPUTS >> 20} MB of a "
                        "notebook's outputs ...\n"))]
                budget -= min(size, budget)
                cell.outputs = outputs
                count = result["count"] if type(result["count"]) is int else count + 1
                cell.execution_count = count

    def _run_test(self, gid: str, source: str, session: Session, namespace: StudentNamespace) -> list:
        """A test cell, run here against the worker; its outputs (see the module's docstring)."""
        try:  # a worker restarted (and the earlier cells replayed) before the item's clock starts
            session.ensure()
        except WorkerFailed:
            pass  # the cell's first call reports it
        session.context = Context(item=gid.removeprefix("test_"), deadline=time.monotonic() + self.item_timeout,
                                  limit=self.item_timeout)
        printed = io.StringIO()
        failure = None
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            for hidden, code in segments(source):
                filename = "<hidden tests>" if hidden else f"<{gid}>"
                if not hidden:  # tracebacks of the visible part quote its lines
                    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
                try:
                    exec(compile(code, filename, "exec"), namespace)
                except KeyboardInterrupt:
                    raise
                except BaseException as err:  # noqa: B036 (a test cell may fail in any way; the batch goes on)
                    failure = _error_output(err, None if hidden else filename)
                    if not isinstance(err, (AssertionError, guard.ReferenceBlocked, NotImplementedError, NameError)):
                        self.log.warning("test cell %s: %s: %s", gid, type(err).__name__, err)
                    break
        outputs = []
        text = printed.getvalue()
        if text:
            outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text[:MAX_TEXT]))
        return outputs + ([failure] if failure is not None else [])


def _copy_files(folder: str, target: str) -> None:
    """The files handed in beside the notebook (never a notebook: the autograded copy holds the
    hidden tests), up to ``MAX_SUBMISSION_FILES`` bytes, no links."""
    total = 0
    for path in sorted(Path(folder).rglob("*")):
        relative = path.relative_to(folder)
        if path.is_symlink() or not path.is_file() or path.suffix == ".ipynb" or any(
                part.startswith(".") for part in relative.parts):
            continue
        total += path.stat().st_size
        if total > MAX_SUBMISSION_FILES:
            break
        (Path(target) / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / relative)
    os.chmod(target, 0o755)
    for path in Path(target).rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


class QuietOverwriteCells(OverwriteCells):
    """OverwriteCells that warns only about test cells a student really changed (see above)."""

    def preprocess_cell(self, cell, resources, cell_index):
        self._submitted, self._student = cell.source, resources["nbgrader"].get("student")
        return super().preprocess_cell(cell, resources, cell_index)

    def report_change(self, name, attr, old, new):
        if attr == "checksum":
            source = self.gradebook.find_source_cell(name, self.notebook_id, self.assignment_id).source
            if visible_part(source).rstrip() == self._submitted.rstrip():
                return  # the cell as released: only its hidden tests differ from the source
            self.log.warning("Cell %s was changed by the student %s: it is graded as the source has it",
                             name, self._student)
            return
        super().report_change(name, attr, old, new)


class FeedbackClearHiddenTests(ClearHiddenTests):
    """nbgrader's ClearHiddenTests for ``generate_feedback``: feedback shows a test cell's visible
    part only. Only test cells are touched: a student's cell that happens to contain the marker text
    would make nbgrader's version fail the whole page. (It accepts the HTML exporter's
    ``display_data_priority`` setting, as GetGrades does, instead of warning that it does not know it.)"""

    display_data_priority = List(["text/html", "application/pdf", "text/latex", "image/svg+xml", "image/png",
                                  "image/jpeg", "text/plain"]).tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if not _is_test(cell):
            return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)


class SanitizeStudentMarkdown(SanitizeHTML):
    """nbconvert's SanitizeHTML on the markdown a student wrote (unlocked and added cells) only: a
    written answer is shown as HTML in the formgrader, where a script could act as the instructor.
    The instructor's locked cells are left as they are (OverwriteCells restored them)."""

    enabled = Bool(True)  # nbconvert's preprocessors are off unless enabled

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type == "code" or utils.is_locked(cell):
            return cell, resources
        return super().preprocess_cell(cell, resources, cell_index)

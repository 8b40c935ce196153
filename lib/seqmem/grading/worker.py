"""The sandboxed worker: runs a submission's cells, then the student's functions on request.

Started by the autograder inside the sandbox (``seqmem.grading.sandbox``) as
``python -m seqmem.grading.worker FD_IN FD_OUT [--own-pid-namespace]``. It reads requests from ``FD_IN`` and answers on
``FD_OUT``, one ``seqmem.grading.wire`` frame each (plain data, never pickle):

- ``{"op": "run", "cell": i, "source": ..., "record": bool}``: run one code cell in an IPython
  shell (magics, display, matplotlib figures as in a notebook); answered ``{"op": "ran", "ok": ...,
  "outputs": [...]}`` with the cell's outputs in nbformat's shape (empty when not recorded);
- ``{"op": "lookup", "name": ...}``: what a name of the notebook holds; answered ``{"op": "found",
  "kind": "callable" | "module" | "value" | "missing", ...}``;
- ``{"op": "call", "name": ..., "item": ..., "args": [...], "kwargs": {...}}``: call the student's
  function with the item's references blocked (``guard.blocked``); answered ``{"op":
  "returned", "value": ..., "args": ...}`` (the arguments after the call, so that changes made
  in place are seen) or ``{"op": "raised", "type": ..., "message": ..., "traceback": ...}``.

Every answer echoes its request's ``id``. After each cell and call, a forked copy of the worker
ends instead of answering, and in the sandbox (its own pid namespace) every other process student
code started is killed.

Nothing here is trusted: student code runs in this process and may change any of it. It can only
make its own answers wrong; the grade is decided by the autograder, which checks every answer.
Standard input, output and error are /dev/null (error stays open with ``SEQMEM_GRADING_DEBUG`` set,
for the autograder's developers); what student code prints while a cell runs is
recorded (up to ``MAX_TEXT`` characters and ``MAX_CELL_BYTES`` of outputs a cell), what it prints
during a call is dropped.

Before any student code runs, the worker puts itself under the rlimits the autograder passes in
``SEQMEM_GRADING_LIMITS`` (a JSON object) and volunteers to be the first the kernel's OOM killer
takes. SIGINT interrupts student code only: between requests it is ignored, so an interrupt that
arrives late cannot end the worker.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import sys
import traceback
import types

MAX_TEXT = 1 << 20  # characters of printed text kept per cell
MAX_OUTPUTS = 200  # outputs kept per cell
MAX_CELL_BYTES = 4 << 20  # characters of all of a cell's outputs together (a message's JSON part is 8 MiB)
MAX_VALUE = 1 << 20  # characters of one output's value (an image larger than this is dropped, not cut)
MAX_TRACEBACK = 4000  # characters of a call's traceback
LIMITS = {"memory": resource.RLIMIT_AS, "cpu_seconds": resource.RLIMIT_CPU, "processes": resource.RLIMIT_NPROC,
          "file_size": resource.RLIMIT_FSIZE, "open_files": resource.RLIMIT_NOFILE}


class _Sink:
    """Where a cell's outputs go (nbformat output dicts), with the limits above."""

    def __init__(self):
        self.outputs: list[dict] = []
        self.text = 0
        self.size = 0
        self.recording = True

    def add(self, output: dict) -> None:
        if not self.recording or len(self.outputs) >= MAX_OUTPUTS:
            return
        if "data" in output:  # a value too large to send whole is dropped, never cut in the middle
            output["data"] = {k: v for k, v in output["data"].items() if not (isinstance(v, str) and len(v) > MAX_VALUE)}
        size = len(str(output))
        if self.size + size > MAX_CELL_BYTES:
            return
        self.size += size
        self.outputs.append(output)

    def write(self, name: str, text: str) -> int:
        if not self.recording or self.text >= MAX_TEXT:
            return len(text)
        kept = text[:MAX_TEXT - self.text]
        self.text += len(kept)
        if len(kept) < len(text):
            kept += "\n... output truncated: the autograder keeps the first 1 MB of a cell's printed text ...\n"
            self.text = MAX_TEXT
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += kept
        else:
            self.add({"output_type": "stream", "name": name, "text": kept})
        return len(text)


class _Stream(io.TextIOBase):
    def __init__(self, sink: _Sink, name: str):
        self.sink, self.name = sink, name

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        return self.sink.write(self.name, str(text))


def _shell(sink: _Sink):
    """An IPython shell whose display, results and tracebacks go to ``sink``, as ipykernel's do."""
    from IPython.core.display_trap import DisplayTrap
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            sink.add({"output_type": "display_data", "data": dict(data), "metadata": dict(metadata or {})})

        def clear_output(self, wait=False):
            sink.outputs.clear()

    class Hook(DisplayHook):
        def start_displayhook(self):
            pass

        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            sink.add({"output_type": "execute_result", "data": dict(format_dict),
                      "metadata": dict(md_dict or {}), "execution_count": self.shell.execution_count})

        def finish_displayhook(self):
            pass

    class Shell(InteractiveShell):
        def init_displayhook(self):
            self.displayhook = Hook(shell=self, cache_size=self.cache_size)
            self.display_trap = DisplayTrap(hook=self.displayhook)

        def init_display_pub(self):
            self.display_pub = Publisher(shell=self, parent=self)
            self.configurables.append(self.display_pub)

        def _showtraceback(self, etype, evalue, stb):
            sink.add({"output_type": "error", "ename": getattr(etype, "__name__", str(etype)),
                      "evalue": str(evalue), "traceback": list(stb)})

        def enable_gui(self, gui=None):
            pass  # figures are shown inline, as in the notebook

    config = Config()
    config.HistoryManager.enabled = False
    return Shell.instance(config=config)


def _quiet_standard_streams() -> None:
    """fd 0 reads nothing, fds 1 and 2 write nowhere: printing cannot reach the protocol."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1) if os.environ.get("SEQMEM_GRADING_DEBUG") else (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _copy_submission(source: str = "/submission") -> None:
    """The files handed in beside the notebook, copied into the (writable) working folder."""
    for folder, _, files in os.walk(source):
        target = os.path.join(os.getcwd(), os.path.relpath(folder, source))
        os.makedirs(target, exist_ok=True)
        for name in files:
            shutil.copyfile(os.path.join(folder, name), os.path.join(target, name))


def _lookup(namespace: dict, name: str) -> dict:
    if name not in namespace:
        return {"op": "found", "kind": "missing"}
    value = namespace[name]
    if isinstance(value, types.ModuleType):
        return {"op": "found", "kind": "module", "module": str(value.__name__)}
    if callable(value):
        return {"op": "found", "kind": "callable"}
    return {"op": "found", "kind": "value", "value": value}


def _call(namespace: dict, request: dict) -> dict:
    from seqmem.grading import guard

    fn, item = namespace.get(request["name"]), request["item"]
    args, kwargs = list(request["args"]), dict(request["kwargs"])
    try:
        with guard.blocked(*guard.references(item), item=item):
            with _interruptible():
                value = fn(*args, **kwargs)
    except BaseException as err:  # noqa: B036 (student code may raise anything, SystemExit included)
        return {"op": "raised", "type": type(err).__name__, **_describe(err)}
    return {"op": "returned", "value": value, "args": args, "kwargs": kwargs}


def _describe(err: BaseException) -> dict:
    """The message and traceback of the student's exception, whatever its ``__str__`` does."""
    try:
        message = str(err)[:2000]
    except BaseException:  # noqa: B036
        message = "(an exception whose message cannot be shown)"
    try:
        trace = "".join(traceback.format_exception(err))[-MAX_TRACEBACK:]
    except BaseException:  # noqa: B036
        trace = ""
    return {"message": message, "traceback": trace}


def _ancestors() -> set[int]:
    """This process and the ones above it (the sandbox's bwrap processes)."""
    found, pid = set(), os.getpid()
    while pid > 0 and pid not in found:
        found.add(pid)
        try:
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            break
        pid = int(status.split("PPid:")[1].split()[0])
    return found


def _tidy(pid: int, keep: set[int], own_namespace: bool) -> None:
    """After a cell or a call: a forked copy of this worker ends here (it must not answer), and,
    in the sandbox's own pid namespace, every process the student's code left behind is killed
    (all but this one and those above it)."""
    if os.getpid() != pid:
        os._exit(0)
    if not own_namespace:
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in keep:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


@contextlib.contextmanager
def _interruptible():
    """SIGINT raises KeyboardInterrupt in student code, as in Jupyter; outside it, it is ignored."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def serve(fd_in: int, fd_out: int, own_namespace: bool = False) -> None:
    from seqmem.grading import wire

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sink = _Sink()
    shell = _shell(sink)
    sys.stdout, sys.stderr = _Stream(sink, "stdout"), _Stream(sink, "stderr")
    pid, keep = os.getpid(), _ancestors()
    wire.send(fd_out, wire.encode({"op": "hello"}))
    while True:
        request = wire.decode(wire.receive(fd_in))
        op = request.get("op")
        if op == "run":
            sink.outputs, sink.text, sink.size, sink.recording = [], 0, 0, bool(request["record"])
            with _interruptible():
                result = shell.run_cell(request["source"], store_history=True)
            reply = {"op": "ran", "cell": request["cell"], "ok": bool(result.success),
                     "outputs": sink.outputs, "count": shell.execution_count - 1}
        elif op == "lookup":
            reply = _lookup(shell.user_ns, request["name"])
        elif op == "call":
            sink.recording = False
            reply = _call(shell.user_ns, request)
        else:
            return
        _tidy(pid, keep, own_namespace)
        reply["id"] = request.get("id")
        try:
            frame = wire.encode(reply)
        except Exception as err:  # an answer that cannot be encoded is an answer of its own
            frame = wire.encode({"op": "raised", "type": "UnsendableResult", "message": str(err)[:500],
                                 "traceback": ""})
        wire.send(fd_out, frame)


def _limit_myself() -> None:
    """The autograder's rlimits (clamped to the hard limits this process already has), and the OOM
    killer's first choice: before any student code runs."""
    for name, value in json.loads(os.environ.pop("SEQMEM_GRADING_LIMITS", "{}")).items():
        _, hard = resource.getrlimit(LIMITS[name])
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(LIMITS[name], (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[1]), int(argv[2])
    _quiet_standard_streams()
    _copy_submission(os.environ.pop("SEQMEM_GRADING_SUBMISSION", "/submission"))
    _limit_myself()
    serve(fd_in, fd_out, own_namespace="--own-pid-namespace" in argv)


if __name__ == "__main__":
    main(sys.argv)

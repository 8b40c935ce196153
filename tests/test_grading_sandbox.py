"""The autograder's machinery, piece by piece: the wire format, the sandbox, the worker session,
the test-cell runner, the grading seed (the whole pipeline is in the homework grading tests)."""
import collections
import json
import math
import os
import shutil
import socket
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from seqmem.grading import autograde, guard, hw1, sandbox, wire
from seqmem.grading.session import Context, RemoteError, Session, StudentNamespace

pytestmark = pytest.mark.grading

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None and not os.environ.get("CI"),
                                 reason="bubblewrap is not installed (make test installs it as root)")


# ------------------------------------------------------------------------------ wire

def _roundtrip(value):
    return wire.decode(wire.encode(value))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64,
                                   torch.int8, torch.int64, torch.uint8, torch.bool])
def test_tensors_of_every_dtype_come_back_equal(dtype):
    x = (torch.randn(3, 4) * 5).to(dtype)
    for value in (x, x[:, ::2], x[0, 0], x[:0]):  # non-contiguous, 0-dim and empty too
        back = _roundtrip(value)
        assert type(back) is torch.Tensor and back.dtype == dtype and back.shape == value.shape
        assert torch.equal(back, value.contiguous())


def test_plain_values_and_containers_come_back_equal():
    Pair = collections.namedtuple("Pair", "h c")
    value = {"a": [1, 2.5, -math.inf, None, True, "text"], "b": (np.arange(6.0).reshape(2, 3), np.float32(0.5)),
             "c": Pair(torch.ones(2), torch.zeros(1)), "d": 10 ** 30}
    back = _roundtrip(value)
    assert back["a"] == [1, 2.5, -math.inf, None, True, "text"] and back["d"] == 10 ** 30
    assert type(back["b"][0]) is np.ndarray and np.array_equal(back["b"][0], value["b"][0])
    assert type(back["b"][1]) is np.float32 and back["b"][1] == 0.5
    assert type(back["c"]) is tuple and torch.equal(back["c"][0], torch.ones(2))  # a NamedTuple: a plain tuple
    assert math.isnan(_roundtrip(math.nan))


def test_anything_else_arrives_as_a_foreign_object_named_after_its_type():
    class Anything(torch.Tensor):
        def __eq__(self, other):
            return True

    class Sneaky:
        def __eq__(self, other):
            return True

    for value, name in ((torch.zeros(2).as_subclass(Anything), "Anything"), (Sneaky(), "Sneaky"), (len, "builtin_function_or_method"),
                        ({1: "int key"}, "dict"), (np.array(["s"], dtype=object), "ndarray_O")):
        back = _roundtrip(value)
        assert isinstance(back, wire.Foreign) and type(back).__name__ == name and not (back == 1)
    with pytest.raises(AssertionError, match="expected a torch.Tensor of shape \\(2,\\), got Anything"):
        guard.guard_tensor("item", _roundtrip(torch.zeros(2).as_subclass(Anything)), (2,), torch.float32)


def _frame(head: bytes, body: bytes = b"") -> bytes:
    return len(head).to_bytes(4, "big") + len(body).to_bytes(4, "big") + head + body


@pytest.mark.parametrize("frame, message", [
    (b"\x00\x00", "shorter than its header"),
    (_frame(b"{oops"), "cannot be read"),
    (_frame(b"[" * 100_000), "cannot be read"),  # nested past Python's recursion limit
    (_frame(b"1" * 5000), "cannot be read"),  # a number json will not convert
    (_frame(b'{"t": "tensor", "dtype": "float32", "shape": [0, 4611686018427387904, 4611686018427387904], '
            b'"at": 0, "size": 0}'), "cannot be read"),
    (_frame(b'{"t": "list", "items": [{"t": "ndarray", "dtype": "<f8", "shape": [1], "at": 0, "size": 8}, '
            b'{"t": "ndarray", "dtype": "<f8", "shape": [1], "at": 0, "size": 8}]}', bytes(8)), "overlap"),
    (_frame(b'{"t": "none"}', bytes(16)), "no value uses"),
    (_frame(b'{"t": "str", "v": "' + b"x" * (8 << 20) + b'"}'), "JSON part has"),
    (_frame(b"[]"), "without its type"),
    (wire.encode(torch.zeros(3))[:-4], "does not match its header"),
    (_frame(b'{"t": "tensor", "dtype": "float32", "shape": [9], "at": 0, "size": 36}'), "outside the message"),
    (_frame(b'{"t": "tensor", "dtype": "float32", "shape": [9], "at": 0, "size": 8}', bytes(8)), "with 8 bytes"),
    (_frame(b'{"t": "tensor", "dtype": "float128", "shape": [], "at": 0, "size": 0}'), "unknown dtype"),
    (_frame(b'{"t": "int", "v": "12x3"}'), "cannot be read"),
    (_frame(b'{"t": "ndarray", "dtype": "|O", "shape": [], "at": 0, "size": 8}', bytes(8)), "not a number"),
    (_frame(b'{"t": "exec", "v": "import os"}'), "unknown type"),
])
def test_malformed_messages_are_refused_with_a_reason(frame, message):
    with pytest.raises(wire.WireError, match=message):
        wire.decode(frame)


def test_too_deep_a_message_is_refused():
    nested = {"t": "list", "items": []}
    for _ in range(40):
        nested = {"t": "list", "items": [nested]}
    with pytest.raises(wire.WireError, match="too deeply"):
        wire.decode(_frame(json.dumps(nested).encode()))


def test_foreign_type_names_are_remembered_up_to_a_bound():
    for k in range(wire.MAX_FOREIGN_TYPES + 50):
        wire.foreign(f"Name{k}")
    assert len(wire._FOREIGN_TYPES) <= wire.MAX_FOREIGN_TYPES + 1


def test_a_reader_that_stops_reading_cannot_block_the_writer():
    r, w = os.pipe()
    os.set_blocking(w, False)
    start = time.monotonic()
    with pytest.raises(wire.TimedOut):
        wire.send(w, bytes(1 << 20), time.monotonic() + 0.2)  # more than a pipe holds, nobody reading
    assert time.monotonic() - start < 2
    os.close(r), os.close(w)


def test_a_reader_keeps_half_a_frame_across_a_timeout():
    r, w = os.pipe()
    frame = wire.encode({"x": torch.arange(5)})
    reader = wire.Reader(r)
    os.write(w, frame[:7])
    with pytest.raises(wire.TimedOut):
        reader.frame(time.monotonic() + 0.05)
    os.write(w, frame[7:])
    assert torch.equal(wire.decode(reader.frame(time.monotonic() + 1))["x"], torch.arange(5))
    os.close(w)
    with pytest.raises(wire.Closed):
        reader.frame(time.monotonic() + 1)
    os.close(r)


# ------------------------------------------------------------------------------ the sandbox

def test_without_bubblewrap_autograding_refuses_with_a_hint(monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="install bubblewrap.*unsandboxed = True"):
        sandbox.check()


def test_a_gradebook_inside_what_the_sandbox_sees_is_refused():
    inside = os.path.join(sandbox.visible_paths()[-1], "gradebook.db")
    with pytest.raises(sandbox.SandboxUnavailable, match="keep the course and its gradebook outside"):
        sandbox.check(inside)


@needs_bwrap
def test_an_environment_under_tmp_stays_visible(tmp_path, monkeypatch):
    # a fresh clone in /tmp has its virtual environment there: the sandbox's own /tmp must not hide it
    import subprocess

    (tmp_path / "seen.txt").write_text("visible")
    tmp_path.chmod(0o755)
    monkeypatch.setattr(sandbox, "visible_paths", lambda: [str(tmp_path)])
    argv = sandbox.command(["/bin/cat", str(tmp_path / "seen.txt")], {"PATH": "/usr/bin"})
    assert subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout == "visible"


@pytest.fixture(scope="module")
def session():
    s = Session(None, cell_timeout=10, total_timeout=300)
    yield s
    s.close()


def _run(session, source, index=0):
    result = session.run_cell(index, source)
    return result, "".join(o.get("text", "") for o in result["outputs"] if o["output_type"] == "stream")


@needs_bwrap
def test_the_sandbox_drops_its_privileges_and_sees_only_the_environment(session, tmp_path):
    (tmp_path / "gradebook.db").write_text("secret")
    _, printed = _run(session, f"""
import os
print(os.getuid(), os.getgid(), os.getcwd())
print(sorted(os.listdir('/')))
print(os.path.exists({str(tmp_path / 'gradebook.db')!r}), os.path.exists('/root/.bash_history'))
grandparent = int(open('/proc/%d/status' % os.getppid()).read().split('PPid:')[1].split()[0])
print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()) == sorted(set([1, os.getpid(), os.getppid(), grandparent])))
""")
    uid, top, secret, procs = printed.splitlines()
    expected = sandbox.host_uid() if os.geteuid() == 0 else sandbox.UID
    assert uid == f"{expected} {expected} /home/student"
    # what _mounts makes, and the first folder of each bound environment path (a clone anywhere)
    made = {"dev", "home", "proc", "tmp", "usr"} | {link for link in ("bin", "lib", "lib64", "sbin")
                                                    if os.path.islink(f"/{link}")}
    environment = {Path(path).parts[1] for path in sandbox.visible_paths()}
    assert set(eval(top)) == made | environment
    assert secret == "False False"
    assert procs == "True"  # the worker and the bwrap processes above it: no process of the machine


@needs_bwrap
def test_the_sandbox_cannot_write_outside_its_scratch_or_reach_the_network(session):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    _, printed = _run(session, f"""
import os, socket
for path in ('/usr/x', os.path.dirname(os.__file__) + '/x', '/x', '/dev/shm/x'):
    try:
        open(path, 'w'); print('wrote', path)
    except OSError as err:
        print('refused', type(err).__name__)
open('/home/student/mine.txt', 'w').write('fine')
print(open('/home/student/mine.txt').read())
try:
    socket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=2); print('connected')
except OSError as err:
    print('no network', type(err).__name__)
""")
    with pytest.raises(socket.timeout):
        server.accept()
    server.close()
    assert "wrote" not in printed and printed.count("refused") == 4
    assert "fine" in printed and "no network" in printed and "connected" not in printed


@needs_bwrap
def test_student_code_cannot_make_namespaces_of_its_own(session):
    # a user namespace would give it capabilities there, and more of the kernel to attack
    _, printed = _run(session, """
import subprocess
print(subprocess.run(['unshare', '-U', '-r', 'true']).returncode != 0)
print(subprocess.run(['unshare', '-n', 'true']).returncode != 0)
""")
    assert printed == "True\nTrue\n"


@needs_bwrap
def test_memory_and_file_sizes_are_limited(session):
    _, printed = _run(session, """
try:
    hoard = bytearray(8 << 30)
except MemoryError:
    print('memory refused')
try:
    open('/home/student/big', 'wb').write(bytes(300 << 20))
except OSError as err:
    print('disk refused', err.errno)
""")
    assert "memory refused" in printed and "disk refused" in printed


def test_a_cell_records_its_outputs_as_a_notebook_does(session):
    result, _ = _run(session, """
import matplotlib.pyplot as plt
print('to stdout')
plt.plot([1, 2])
41 + 1
""")
    kinds = [o["output_type"] for o in result["outputs"]]
    assert result["ok"] and kinds.count("stream") == 1 and "execute_result" in kinds
    assert any(o["output_type"] == "display_data" and "image/png" in o["data"] for o in result["outputs"])
    failed, _ = _run(session, "1 / 0")
    assert not failed["ok"] and failed["outputs"][-1]["ename"] == "ZeroDivisionError"


def test_a_hanging_cell_is_interrupted_and_the_notebook_keeps_its_state(session):
    result, _ = _run(session, "kept = 'before the loop'\nwhile True:\n    pass")
    assert result["outputs"][-1]["ename"] == "CellTimeoutError"
    assert "stopped after 10 s" in result["outputs"][-1]["evalue"]
    assert _run(session, "print(kept)")[1] == "before the loop\n"


def test_a_cell_that_ends_the_worker_costs_that_cell_only(session):
    _run(session, "survivor = 41")
    died, _ = _run(session, "import os\nos._exit(3)")
    assert died["outputs"][0]["ename"] == "DeadKernelError" and "exit code 3" in died["outputs"][0]["evalue"]
    ignored, _ = _run(session, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass")
    assert ignored["outputs"][-1]["ename"] == "CellTimeoutError"
    again = _run(session, "print(survivor + 1)")
    assert again[1] == "42\n", (again, session.ran)  # a fresh worker, the earlier cells replayed


def test_calls_send_plain_data_and_see_changes_made_in_place(session):
    _run(session, """
import numpy as np
def scale(grads, factor):
    for g in grads.values():
        g *= factor
    grads['new'] = np.ones(1)
    return sum(float(g.sum()) for g in grads.values())
def fails(kind):
    raise {'value': ValueError, 'custom': type('MyError', (Exception,), {})}[kind]('from the student')
""")
    namespace = StudentNamespace(session)
    grads = {"a": np.ones(3), "b": np.full(2, 2.0)}
    assert namespace["scale"](grads, 2.0) == pytest.approx(15.0)
    assert np.array_equal(grads["a"], [2.0, 2, 2]) and set(grads) == {"a", "b", "new"}
    with pytest.raises(ValueError, match="from the student"):
        namespace["fails"]("value")
    with pytest.raises(RemoteError, match="MyError: from the student"):
        namespace["fails"]("custom")
    with pytest.raises(AssertionError, match="^item: your function raised ValueError: from the student"):
        guard.call("item", namespace["fails"], "value")
    assert namespace["np"] is np  # a module: this process's own import of it
    with pytest.raises(KeyError):
        namespace["not_defined_anywhere"]


def test_a_call_past_the_items_limit_is_stopped_and_the_worker_lives_on(session):
    _run(session, "def forever():\n    while True:\n        pass\nalive = 'yes'")
    session.context = Context(item="spin", deadline=time.monotonic() + 2, limit=2)
    try:
        with pytest.raises(AssertionError, match="^spin: stopped after 2 s, the time limit of one item"):
            guard.call("spin", StudentNamespace(session)["forever"])
    finally:
        session.context = Context()
    assert _run(session, "print(alive)")[1] == "yes\n"


def test_the_items_references_are_blocked_in_the_worker(session):
    _run(session, """
import torch, seqmem
def rnn_forward_padded(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    cell = seqmem.RNNCell(xs.shape[2], h0.shape[1]).to(xs.dtype)
    h, y = cell(h0, xs[:, 0])
    return torch.stack([h] * xs.shape[1], 1), h
""")
    with pytest.raises(guard.ReferenceBlocked, match="seqmem.rnn.RNNCell.forward is not available"):
        hw1.check_rnn_forward_padded(StudentNamespace(session)["rnn_forward_padded"])


# ------------------------------------------------------------------------------ test cells and outputs

SOURCE = "x = 1\nassert x == 1\n### BEGIN HIDDEN TESTS\ncheck(x)\n### END HIDDEN TESTS\nprint(x)"


def test_a_test_cell_splits_into_visible_and_hidden_parts_as_nbgrader_clears_them():
    from nbgrader.preprocessors import ClearHiddenTests

    assert autograde.segments(SOURCE) == [(False, "x = 1\nassert x == 1"), (True, "check(x)"), (False, "print(x)")]
    cell = nbformat.v4.new_code_cell(SOURCE)
    ClearHiddenTests()._remove_hidden_test_region(cell)
    assert autograde.visible_part(SOURCE) == cell.source


def test_only_plain_text_and_images_of_a_students_outputs_are_kept():
    outputs = [{"output_type": "display_data", "data": {"text/html": "<script>steal()</script>",
                                                        "image/svg+xml": "<svg onload=x>", "text/plain": "ok"}},
               {"output_type": "display_data", "data": {"application/javascript": "steal()"}},
               {"output_type": "stream", "name": "stdout", "text": ["a", "b"]},
               {"output_type": "stream", "name": "elsewhere", "text": "x"}, "not a dict", {"output_type": "unknown"},
               {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"] * 500}]
    kept = autograde.clean_outputs(outputs)
    assert [o.output_type for o in kept] == ["display_data", "stream", "error"]
    assert dict(kept[0].data) == {"text/plain": "ok"} and kept[1].text == "ab" and len(kept[2].traceback) == 200
    for output in kept:
        nbformat.validator.validate(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[output])]))


# ------------------------------------------------------------------------------ the grading seed

def _padded_rnn(xs, lengths, h0, W_ih, W_hh, b_ih, b_hh):
    """A right answer to homework 1's first item, written here (the check's own reference is
    blocked while an answer runs)."""
    rows, last = [], []
    for b in range(xs.shape[0]):
        h, states = h0[b], []
        for t in range(int(lengths[b])):
            h = torch.tanh(W_ih @ xs[b, t] + b_ih + W_hh @ h + b_hh)
            states.append(h)
        pad = [torch.zeros_like(h0[b])] * (xs.shape[1] - len(states))
        rows.append(torch.stack(states + pad))
        last.append(h)
    return torch.stack(rows), torch.stack(last)  # (B, T, H), (B, H)


def _inputs_seen(seed):
    seen = []

    def student(xs, lengths, h0, *weights):
        seen.append(xs.clone())
        return _padded_rnn(xs, lengths, h0, *weights)

    guard.set_grading_seed(seed)
    try:
        hw1.check_rnn_forward_padded(student)
    finally:
        guard.set_grading_seed(None)
    return seen


def test_the_grading_seed_draws_inputs_nobody_can_read_in_the_library():
    default, again = _inputs_seen(None), _inputs_seen(None)
    a, b = _inputs_seen("instructor's secret"), _inputs_seen("another secret")
    assert all(torch.equal(p, q) for p, q in zip(default, again))  # without a seed: the checks' own
    shapes = lambda seen: [tuple(x.shape) for x in seen]  # noqa: E731
    assert shapes(a) != shapes(default) and shapes(a) != shapes(b)
    assert guard.item_seed("item", 5) == 5


# ------------------------------------------------------------------------------ never unsandboxed by accident

def test_nbgrader_stops_when_the_sandboxed_autograder_cannot_be_loaded(tmp_path):
    # nbgrader ignores a config file that raises an Exception and goes on with its own, unsandboxed
    # Execute: ours raises SystemExit instead, which stops nbgrader before any student code runs
    from conftest import ROOT
    from grading_helpers import nbgrader

    config = (ROOT / "nbgrader_config.py").read_text()
    (tmp_path / "nbgrader_config.py").write_text(config.replace("seqmem.grading.autograde", "seqmem.grading.missing"))
    result = nbgrader("autograde", "hw1-rnn", cwd=tmp_path)
    assert result.returncode != 0
    assert "nbgrader stops here rather than grade with student code unsandboxed" in result.stderr + result.stdout


def test_a_check_run_by_nbgrader_itself_in_the_students_kernel_grades_nothing(monkeypatch):
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    with pytest.raises(AssertionError, match="^rnn_forward_padded: not graded: .* without seqmem's sandbox"):
        hw1.check_rnn_forward_padded(_padded_rnn)
    monkeypatch.setenv("NBGRADER_EXECUTION", "validate")  # a student's Validate button: the checks run as usual
    hw1.check_rnn_forward_padded(_padded_rnn)

"""The guard machinery every homework's checks share.

- **Blocking references.** While a student's function runs for an item, that item's references
  (the library's implementation, torch's modules and functions, and torch's operators however
  they are reached: ``torch.ops.aten.*``, ``torch._VF.*``, C++ or TorchScript) raise
  ``ReferenceBlocked``. Each homework module declares its items' references with ``register``.
- **Calling the student.** ``call(item, fn, *args)`` runs the student's function: in the sandboxed
  worker when ``fn`` is a remote function (autograding), with the blocks applied there; in this
  process otherwise (the test suite calls the checks directly on local functions), but never
  under nbgrader's own autograding, which would mean a check running in the student's kernel. The checks call
  it before they compute the expected answer, so no frame holds the answer while student code runs.
- **Type guards and comparison.** ``guard_tensor`` and ``guard_array`` accept exactly a
  ``torch.Tensor`` or ``numpy.ndarray`` of the expected shape and dtype (a look-alike object whose
  ``==`` always says yes gains nothing); ``close`` compares with ``torch.testing.assert_close`` and
  says what was expected and what came.
- **Seeds nobody can predict.** ``item_seed(item, default)`` is the default seed written in the
  check (the test suite's) unless the instructor has set a grading seed (``set_grading_seed``,
  done by the autograder from its configuration): then every item draws from a seed derived from
  it, which no student can read in the library they installed.

A failed check raises ``AssertionError`` (nbgrader gives zero points for the cell) with a message
that names the item, says what was expected and what came.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import types
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["ReferenceBlocked", "blocked", "register", "references", "call", "fail", "guard_tensor",
           "guard_array", "guard_pair", "guard_tuple", "close", "item_seed", "set_grading_seed"]


class ReferenceBlocked(RuntimeError):
    """Raised when graded code calls the implementation it was asked to write."""


# ------------------------------------------------------------------------------ blocking

def _blocked_message(item: str, what: str) -> str:
    return (f"{item}: {what} is not available while this item is graded: write it yourself from the "
            "equations")


def _raise_blocked(*args, _seqmem_blocked_message="this reference", **kwargs):
    # Its code is swapped into blocked functions of other modules, where this module's names are
    # not globals: the exception class is found through the import system, a builtin; the message
    # comes from the keyword-only default that ``blocked`` sets on each blocked function.
    raise __import__("seqmem.grading.guard", fromlist=["ReferenceBlocked"]).ReferenceBlocked(
        _seqmem_blocked_message)


def _raiser(message: str) -> Callable:
    """A stand-in for a blocked attribute (a method, a module's function, a table entry)."""
    def blocked_reference(*args, **kwargs):
        raise ReferenceBlocked(message)
    return blocked_reference


def _label(owner: Any, name: Any) -> str:
    """How a student would name ``owner.name``: torch.nn.LSTMCell.forward, seqmem.lstm.lstm_step."""
    if isinstance(owner, dict):
        return f"torch's decomposition of {name}"
    if isinstance(owner, types.ModuleType):
        return f"{owner.__name__}.{name}"
    public = "torch.nn" if getattr(torch.nn, owner.__name__, None) is owner else owner.__module__
    return f"{public}.{owner.__qualname__}.{name}"


def _op_name(func: Any) -> str:
    """The operator's name however it is reached: torch.lstm_cell, torch._VF.lstm_cell,
    torch._C._VariableFunctions.lstm_cell, torch.ops.aten.lstm_cell(.default) all give lstm_cell."""
    schema = getattr(func, "_schema", None)
    name = schema.name if schema is not None else (getattr(func, "_qualified_op_name", None)
                                                   or getattr(func, "__name__", ""))
    return str(name).rpartition("::")[2]


def _refuse_op(item: str, stems: tuple, func: Any) -> None:
    name = _op_name(func)
    if any(stem in name for stem in stems):
        raise ReferenceBlocked(_blocked_message(item, f"torch's {name} (torch.{name}, torch._VF.{name}, "
                                                      f"torch.ops.aten.{name})"))


class _BlockOps(TorchFunctionMode):
    """Refuses every torch function or operator whose name contains one of ``stems`` (e.g. "lstm":
    lstm_cell, lstm, _thnn_fused_lstm_cell, quantized_lstm_cell, ...), at the Python API."""

    def __init__(self, item: str, stems: tuple):
        super().__init__()
        self.item, self.stems = item, stems

    def __torch_function__(self, func, types, args=(), kwargs=None):
        _refuse_op(self.item, self.stems, func)
        return func(*args, **(kwargs or {}))


class _BlockKernels(TorchDispatchMode):
    """The same below autograd: torch's real kernels (_ctc_loss, _cudnn_rnn, mkldnn_rnn_layer, ...)
    however they are reached, from C++ or TorchScript included. (Composite operators such as
    lstm_cell are decomposed before they get here: ``_BlockOps`` catches those.)"""

    def __init__(self, item: str, stems: tuple):
        super().__init__()
        self.item, self.stems = item, stems

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        _refuse_op(self.item, self.stems, func)
        return func(*args, **(kwargs or {}))


def _swap(target: Any, item: str, restore: list) -> None:
    """Block one target, recording how to undo it in ``restore``."""
    if isinstance(target, types.FunctionType):
        if target.__closure__ is not None:
            raise TypeError(f"cannot block {target.__qualname__} by its code (a closure): "
                            "name it as (owner, name)")
        message = _blocked_message(item, f"{target.__module__}.{target.__qualname__}")
        restore.append(("code", target, (target.__code__, target.__kwdefaults__)))
        target.__code__ = _raise_blocked.__code__
        target.__kwdefaults__ = {"_seqmem_blocked_message": message}
        return
    owner, name = target
    stand_in = _raiser(_blocked_message(item, _label(owner, name)))
    if isinstance(owner, dict):
        restore.append(("item", owner, (name, owner[name])))
        owner[name] = stand_in
        return
    own = name in vars(owner)  # an inherited method is restored by deleting the stand-in
    restore.append(("attr", owner, (name, getattr(owner, name) if own else None, own)))
    setattr(owner, name, stand_in)


def _undo(kind: str, owner: Any, saved: tuple) -> None:
    if kind == "code":
        owner.__code__, owner.__kwdefaults__ = saved
    elif kind == "item":
        owner[saved[0]] = saved[1]
    elif saved[2]:
        setattr(owner, saved[0], saved[1])
    else:
        delattr(owner, saved[0])


@contextlib.contextmanager
def blocked(*targets: Any, item: str = "this item") -> Iterator[None]:
    """Make ``targets`` raise ``ReferenceBlocked`` inside the ``with`` block, then restore them.

    A target is a plain Python function (its code is swapped, so every reference to it is blocked,
    however it was imported); a pair ``(owner, name)`` whose attribute is replaced (a class's
    ``forward`` method, a module's function; an entry of a dict when ``owner`` is a dict); or a
    string, a stem of torch operator names: every torch function or operator whose name contains
    it is refused (``"lstm"``: torch.lstm_cell, torch._VF.lstm, torch.ops.aten.lstm_cell, ...).
    The message names ``item`` and what was blocked.
    """
    stems = tuple(t for t in targets if isinstance(t, str))
    restore: list = []
    try:
        for target in targets:
            if not isinstance(target, str):
                _swap(target, item, restore)
        with contextlib.ExitStack() as modes:
            if stems:
                modes.enter_context(_BlockOps(item, stems))
                modes.enter_context(_BlockKernels(item, stems))
            yield
    finally:
        for kind, owner, saved in reversed(restore):
            _undo(kind, owner, saved)


_REFERENCES: dict[str, Callable[[], list]] = {}


def register(table: dict[str, Callable[[], list]]) -> None:
    """Declare what each item may not call: ``{item: a function returning its targets}`` (see
    ``blocked``). The targets are looked up only when the item is graded, so a homework's library
    modules are imported only then."""
    _REFERENCES.update(table)


def _homework_modules() -> list:
    """Every ``seqmem.grading.hwN`` module, imported (each registers its items when imported)."""
    import importlib
    import pkgutil
    import re

    package = __name__.rpartition(".")[0]
    names = [m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)]
    return [importlib.import_module(f"{package}.{n}") for n in sorted(names) if re.fullmatch(r"hw\d+", n)]


def graders() -> list:
    """The checks' own answers: every homework module's ``*_reference`` functions and the helpers
    it lists in ``GRADER_HELPERS``. One call from an answer, they are blocked for every item."""
    found = []
    for module in _homework_modules():
        found += [f for name, f in vars(module).items()
                  if name.endswith("_reference") and isinstance(f, types.FunctionType)]
        found += list(getattr(module, "GRADER_HELPERS", ()))
    return found


def references(item: str) -> list:
    """What ``item`` may not call: what its homework declared, and every check's own reference
    answers; nothing else for an item no homework declared. Other items' library references stay
    usable as tools."""
    modules = _homework_modules()  # noqa: F841 (imported: each homework module registers its items)
    maker = _REFERENCES.get(item)
    return (maker() if maker is not None else []) + graders()


def call(item: str, fn: Callable, *args):
    """Call the student's function for ``item`` with its references blocked; errors by name.

    A remote function (the autograder's handle on a function in the sandboxed worker) is called
    there, with the blocks applied there; its errors arrive as ``AssertionError``. A local
    function is called here.
    """
    from .session import RemoteFunction

    if isinstance(fn, RemoteFunction):
        return fn.call_for_item(item, args)
    if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader's own Execute, in the student's kernel
        raise AssertionError(f"{item}: not graded: this notebook is being autograded without seqmem's sandbox "
                             "(nbgrader_config.py did not put SandboxedExecute in place of Execute)")
    with blocked(*references(item), item=item):
        try:
            return fn(*args)
        except ReferenceBlocked:
            raise
        except Exception as err:  # report the student's error with the item's name
            raise AssertionError(f"{item}: your function raised {type(err).__name__}: {err}") from err


# ------------------------------------------------------------------------------ seeds

_GRADING_SEED: list = [None]


def set_grading_seed(secret: str | int | None) -> None:
    """The instructor's grading seed (configuration, never code), or None for the checks' own."""
    _GRADING_SEED[0] = None if secret is None else str(secret)


def item_seed(item: str, default: int) -> int:
    """``default`` without a grading seed; with one, a 63-bit seed derived from it and the item."""
    secret = _GRADING_SEED[0]
    if secret is None:
        return default
    digest = hashlib.sha256(f"{secret}\0{item}\0{default}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


# ------------------------------------------------------------------------------ guards

def fail(item: str, message: str):
    raise AssertionError(f"{item}: {message}")


def guard_tensor(item: str, out: Any, shape: tuple, dtype: torch.dtype) -> None:
    """The type guard: exactly a torch.Tensor (not a look-alike) of the right shape and dtype."""
    if type(out) is not torch.Tensor:
        fail(item, f"expected a torch.Tensor of shape {shape}, got {type(out).__name__}")
    if out.layout != torch.strided or out.device.type != "cpu":
        fail(item, f"expected a dense tensor on the CPU, got layout {out.layout} on {out.device}")
    if tuple(out.shape) != shape:
        fail(item, f"expected shape {shape}, got {tuple(out.shape)}")
    if out.dtype != dtype:
        fail(item, f"expected dtype {dtype} (the inputs' dtype), got {out.dtype}")


def guard_array(item: str, out: Any, shape: tuple, dtype) -> None:
    if type(out) is not np.ndarray:
        fail(item, f"expected a numpy.ndarray of shape {shape}, got {type(out).__name__}")
    if out.shape != shape:
        fail(item, f"expected shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        fail(item, f"expected dtype {np.dtype(dtype)} (the inputs' dtype), got {out.dtype}")


def guard_tuple(item: str, out: Any, shapes: tuple[tuple, ...], dtype: torch.dtype, names: tuple[str, ...]) -> tuple:
    """A tuple of exact tensors of ``shapes`` (one per name) and ``dtype``, detached; read past any
    override of a tuple subclass."""
    n = len(names)
    if not isinstance(out, tuple) or tuple.__len__(out) != n:
        got = f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        fail(item, f"expected a tuple ({', '.join(names)}) of {n} tensors of shapes "
                   f"{', '.join(map(str, shapes))}, got {got}")
    values = tuple(tuple.__getitem__(out, i) for i in range(n))
    for name, value, shape in zip(names, values, shapes):
        guard_tensor(f"{item} ({name})", value, shape, dtype)
    return tuple(v.detach() for v in values)


def guard_pair(item: str, out: Any, shape: tuple, dtype: torch.dtype, names=("h_next", "c_next")) -> tuple:
    """A tuple of two exact tensors of ``shape`` and ``dtype`` (a cell's (h', c')), detached."""
    return guard_tuple(item, out, (shape, shape), dtype, names)


_DEFAULT_TOL = {torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5), torch.float32: (1.3e-6, 1e-5),
                torch.float64: (1e-7, 1e-7)}  # torch.testing.assert_close's (rtol, atol)


def _first_mismatch(actual, expected, rtol=None, atol=None) -> str:
    """Expected and got: the whole values when they have at most 8 entries, else at the first index
    where they differ."""
    got, want = torch.as_tensor(actual), torch.as_tensor(expected)
    if got.shape != want.shape:
        return ""
    if want.numel() <= 8:
        return f"\nexpected {want.tolist()}\ngot      {got.tolist()}"
    default = _DEFAULT_TOL.get(want.dtype, (0.0, 0.0))
    rtol, atol = default if rtol is None else (rtol, atol)
    wrong = ~torch.isclose(got.to(want.dtype), want, rtol=rtol, atol=atol)
    if not wrong.any():
        return ""
    index = tuple(int(i) for i in wrong.nonzero()[0])
    return f"\nat index {index}: expected {want[index].item()!r}, got {got[index].item()!r}"


def close(item: str, actual, expected, what: str = "result", **tol) -> None:
    try:
        torch.testing.assert_close(actual, expected, **tol)
    except AssertionError as err:
        fail(item, f"the {what} differs from the reference on random inputs:\n{err}"
             + _first_mismatch(actual, expected, tol.get("rtol"), tol.get("atol")))


# ------------------------------------------------------------------------------ shared references

def torch_compilers() -> list:
    """torch's compilers, which would run a blocked operator out of the modes' sight."""
    return [(torch.jit, "script"), (torch.jit, "trace"), (torch, "compile")]


def decompositions(*stems: str) -> list:
    """torch's Python decompositions of its recurrent operators (torch._decomp): by name and in the
    decomposition table."""
    import torch._decomp
    from torch._decomp import decompositions as module

    names = [(module, n) for n in dir(module) if any(s in n for s in stems) and callable(getattr(module, n))]
    table = torch._decomp.decomposition_table
    return names + [(table, op) for op in list(table) if any(s in str(op) for s in stems)]

"""The checks that homework tests call.

Each ``check_*`` function runs a student's function on fresh, seeded random inputs and compares its
result with the library's reference using ``torch.testing.assert_close``. Before comparing, a type
guard makes sure the result really is a tensor (or array) of the expected shape and dtype, so an
object whose ``__eq__`` always answers True gains nothing. While the student's function runs, the
item's own references are blocked: the library's implementation of it, and torch's (as modules, as
functions, and by operator name however it is reached: ``torch.ops.aten.*``, ``torch._VF.*``,
through a ``TorchFunctionMode`` and a ``TorchDispatchMode``). A solution that merely calls one fails
with ``ReferenceBlocked``, whose message names the item and what was blocked. Other items'
references stay usable as tools. The student's function runs before the reference is computed, so
no frame on the stack holds the expected answer.

A failed check raises ``AssertionError`` (nbgrader then gives zero points for the cell) with a
message that says what was expected and what came.

Homework 1: the RNN cell, BPTT's backward pass, gradient clipping. Homework 2: the LSTM, GRU and
CIFG cells, the weights of the lecture's counting cell (run in ``seqmem.LSTMCell`` on random
sequences and compared with the counter it should be), and the CTC loss of one sequence.
"""
from __future__ import annotations

import contextlib
import types
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["ReferenceBlocked", "blocked", "check_rnn_cell_forward", "check_bptt_backward",
           "check_clip_grad_norm", "check_lstm_cell_forward", "check_gru_cell_forward",
           "check_cifg_cell_forward", "check_counting_lstm", "check_ctc_nll",
           "counting_sequences", "counter_outputs", "run_counting_cell"]


class ReferenceBlocked(RuntimeError):
    """Raised when graded code calls the implementation it was asked to write."""


def _blocked_message(item: str, what: str) -> str:
    return (f"{item}: {what} is not available while this item is graded: write it yourself from the "
            "equations")


def _raise_blocked(*args, _seqmem_blocked_message="this reference", **kwargs):
    # Its code is swapped into blocked functions of other modules, where this module's names are
    # not globals: the exception class is found through the import system, a builtin; the message
    # comes from the keyword-only default that ``blocked`` sets on each blocked function.
    raise __import__("seqmem.grading", fromlist=["ReferenceBlocked"]).ReferenceBlocked(
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


def _refuse_op(item: str, stems: tuple, func: Any) -> None:
    name = _op_name(func)
    if any(stem in name for stem in stems):
        raise ReferenceBlocked(_blocked_message(item, f"torch's {name} (torch.{name}, torch._VF.{name}, "
                                                      f"torch.ops.aten.{name})"))


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


def _fail(item: str, message: str):
    raise AssertionError(f"{item}: {message}")


def _guard_tensor(item: str, out: Any, shape: tuple, dtype: torch.dtype) -> None:
    """The type guard: exactly a torch.Tensor (not a look-alike) of the right shape and dtype."""
    if type(out) is not torch.Tensor:
        _fail(item, f"expected a torch.Tensor of shape {shape}, got {type(out).__name__}")
    if tuple(out.shape) != shape:
        _fail(item, f"expected shape {shape}, got {tuple(out.shape)}")
    if out.dtype != dtype:
        _fail(item, f"expected dtype {dtype} (the inputs' dtype), got {out.dtype}")


def _guard_array(item: str, out: Any, shape: tuple, dtype) -> None:
    if type(out) is not np.ndarray:
        _fail(item, f"expected a numpy.ndarray of shape {shape}, got {type(out).__name__}")
    if out.shape != shape:
        _fail(item, f"expected shape {shape}, got {out.shape}")
    if out.dtype != dtype:
        _fail(item, f"expected dtype {np.dtype(dtype)} (the inputs' dtype), got {out.dtype}")


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


def _close(item: str, actual, expected, what: str = "result", **tol) -> None:
    try:
        torch.testing.assert_close(actual, expected, **tol)
    except AssertionError as err:
        _fail(item, f"the {what} differs from the reference on random inputs:\n{err}"
              + _first_mismatch(actual, expected, tol.get("rtol"), tol.get("atol")))


def _torch_compilers() -> list:
    """torch's compilers, which would run a blocked operator out of the modes' sight."""
    return [(torch.jit, "script"), (torch.jit, "trace"), (torch, "compile")]


def _decompositions(*stems: str) -> list:
    """torch's Python decompositions of its recurrent operators (torch._decomp): by name and in the
    decomposition table."""
    import torch._decomp
    from torch._decomp import decompositions

    names = [(decompositions, n) for n in dir(decompositions)
             if any(s in n for s in stems) and callable(getattr(decompositions, n))]
    table = torch._decomp.decomposition_table
    return names + [(table, op) for op in list(table) if any(s in str(op) for s in stems)]


def _recurrent_layers() -> list:
    """The library's layers, which run any cell (and torch's fused kernels)."""
    from . import layers

    return [layers.run_stacked, (layers.Stacked, "forward"), (layers.RecurrentLayer, "forward")]


def _rnn_cell_references() -> list:
    from . import irnn, rnn, scrn

    return [rnn.rnn_step, (rnn.RNNCell, "forward"), (rnn.NaiveRNNCell, "forward"), (rnn.RNN, "forward"),
            (irnn.SkipRNNCell, "forward"), (irnn.SkipRNN, "forward"), (scrn.SCRNCell, "forward"),
            *_recurrent_layers(), (torch.nn.RNNCell, "forward"), (torch.nn.RNN, "forward"),
            *_decompositions("rnn"), *_torch_compilers(), "rnn"]


def _bptt_references() -> list:
    """BPTT's backward pass, the library's and torch's (autograd); ``bptt.forward`` stays a tool."""
    from . import bptt

    return [bptt.backward, bptt._backward_full, bptt._backward_truncated,
            torch.autograd.grad, torch.autograd.backward, torch.Tensor.backward]


def _clip_references() -> list:
    from . import bptt

    names = ("clip_grad_norm_", "clip_grad_norm", "get_total_norm", "clip_grads_with_norm_")
    return [bptt.clip_grad_norm] + [(torch.nn.utils, n) for n in names if hasattr(torch.nn.utils, n)]


def _lstm_references() -> list:
    """The LSTM (and CIFG, which torch's LSTM computes with f's weights set to -i's)."""
    from torch.ao.nn.quantizable.modules import rnn as quantizable

    from . import lstm, nested

    return [lstm.lstm_step, (lstm.LSTMCell, "forward"), (lstm.LSTM, "forward"), nested.lstm_gates,
            (nested.NestedLSTMCell, "forward"), *_recurrent_layers(),
            (torch.nn.LSTMCell, "forward"), (torch.nn.LSTM, "forward"),
            *[(getattr(quantizable, n), "forward") for n in ("LSTMCell", "_LSTMSingleLayer", "_LSTMLayer", "LSTM")],
            *_decompositions("lstm", "rnn"), *_torch_compilers(), "lstm", "rnn"]


def _gru_references() -> list:
    from . import gru

    return [gru.gru_step, (gru.GRUCell, "forward"), (gru.GRU, "forward"), *_recurrent_layers(),
            (torch.nn.GRUCell, "forward"), (torch.nn.GRU, "forward"),
            *_decompositions("gru", "rnn"), *_torch_compilers(), "gru", "rnn"]


def _counting_references() -> list:
    """The library's hand-built counting cell, where it still has one (``run_counting_cell``, and
    so ``seqmem.LSTMCell``, stays a tool for this item)."""
    try:
        from . import data
    except ImportError:
        return []
    return [getattr(data, n) for n in ("counting_cell_weights", "counting_cell") if hasattr(data, n)]


def _ctc_references() -> list:
    from . import ctc

    return [ctc.ctc_loss, ctc._log_likelihood, ctc._alpha_step, (torch.nn.CTCLoss, "forward"),
            (torch.nn.functional, "ctc_loss"), *_torch_compilers(), "ctc"]


_REFERENCES = {"rnn_cell_forward": _rnn_cell_references, "bptt_backward": _bptt_references,
               "clip_grad_norm": _clip_references, "lstm_cell_forward": _lstm_references,
               "cifg_cell_forward": _lstm_references, "gru_cell_forward": _gru_references,
               "counting_lstm": _counting_references, "ctc_nll": _ctc_references}


def _references(item: str) -> list:
    """What ``item`` may not call: the library's implementation of it, and torch's (by function,
    and by operator name however it is reached). Other items' references stay usable as tools;
    each homework's modules are imported only when its items are graded."""
    return _REFERENCES[item]()


def _call(item: str, fn: Callable, *args):
    """Call the student's function with the item's references blocked; report errors by name.

    The checks call it before they compute the expected answer, so no frame on the stack holds
    the answer while the student's code runs.
    """
    with blocked(*_references(item), item=item):
        try:
            return fn(*args)
        except ReferenceBlocked:
            raise
        except Exception as err:  # report the student's error with the item's name
            raise AssertionError(f"{item}: your function raised {type(err).__name__}: {err}") from err


def _shapes(rng: np.random.Generator, trials: int) -> list[tuple[int, int, int, int]]:
    """Fresh (T, B, I, H) shapes, including the edge cases T = 1 and B = 1."""
    sizes = [(1, 1, 1, 1), (1, 3, 2, 4)]
    sizes += [tuple(int(v) for v in rng.integers(1, 7, size=4)) for _ in range(max(trials - 2, 0))]
    return sizes[:trials]


def check_rnn_cell_forward(fn: Callable, trials: int = 6, seed: int = 2024) -> None:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h'`` with h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Shapes: x (B, I), h (B, H), W_ih (H, I), W_hh (H, H), b_ih and b_hh (H,); h' (B, H). Tried in
    float32 and float64.
    """
    from .rnn import rnn_step

    item = "rnn_cell_forward"
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    for k, (_, B, I, H) in enumerate(_shapes(rng, trials)):
        dtype = torch.float64 if k % 2 else torch.float32
        x, h = torch.randn(B, I, generator=g, dtype=dtype), torch.randn(B, H, generator=g, dtype=dtype)
        W_ih, W_hh = torch.randn(H, I, generator=g, dtype=dtype), torch.randn(H, H, generator=g, dtype=dtype)
        b_ih, b_hh = torch.randn(H, generator=g, dtype=dtype), torch.randn(H, generator=g, dtype=dtype)
        out = _call(item, fn, x.clone(), h.clone(), W_ih.clone(), W_hh.clone(), b_ih.clone(), b_hh.clone())
        expected = rnn_step(x, h, W_ih, W_hh, b_ih, b_hh)  # after the student's call: see _call
        _guard_tensor(item, out, (B, H), dtype)
        _close(item, out.detach(), expected, what=f"h' for B={B}, I={I}, H={H}")


def _random_rnn(rng: np.random.Generator, T: int, B: int, I: int, H: int, dtype=np.float64):
    params = {"W_xh": rng.normal(0, 0.6, (H, I)), "W_hh": rng.normal(0, 0.6, (H, H)), "b": rng.normal(0, 0.2, H)}
    params = {k: v.astype(dtype) for k, v in params.items()}
    xs, h0 = rng.normal(size=(T, B, I)).astype(dtype), rng.normal(size=(B, H)).astype(dtype)
    dhs = rng.normal(size=(T, B, H)).astype(dtype)
    return params, xs, h0, dhs


def check_bptt_backward(fn: Callable, trials: int = 6, seed: int = 7) -> None:
    """Check ``fn(params, cache, dhs) -> grads`` against ``seqmem.bptt.backward``.

    ``params`` and ``cache`` come from ``seqmem.bptt.forward(params, xs, h0)``; ``grads`` must be a
    dict with the keys ``W_xh``, ``W_hh``, ``b`` and ``h0``, each a NumPy array shaped like its
    parameter (``h0`` like the initial state). The module ``seqmem.bptt`` is unreachable while
    ``fn`` runs.
    """
    from . import bptt

    item = "bptt_backward"
    rng = np.random.default_rng(seed)
    for T, B, I, H in _shapes(rng, trials):
        params, xs, h0, dhs = _random_rnn(rng, T, B, I, H)
        _, cache = bptt.forward(params, xs, h0)
        got = _call(item, fn, {k: v.copy() for k, v in params.items()}, _copy_cache(cache), dhs.copy())
        expected = bptt.backward(params, cache, dhs)
        if type(got) is not dict:
            _fail(item, f"expected a dict of gradients with keys {sorted(expected)}, got {type(got).__name__}")
        if set(got) != set(expected):
            _fail(item, f"expected the keys {sorted(expected)}, got {sorted(map(str, got))}")
        for name, value in expected.items():
            _guard_array(f"{item}['{name}']", got[name], value.shape, value.dtype)
            _close(item, got[name], value, what=f"gradient {name} for T={T}, B={B}, I={I}, H={H}",
                   rtol=1e-7, atol=1e-9)


def _copy_cache(cache):
    """A deep copy of the forward pass's cache, so a student's in-place edits cannot leak back."""
    if isinstance(cache, dict):
        return {k: _copy_cache(v) for k, v in cache.items()}
    if isinstance(cache, (list, tuple)):
        return type(cache)(_copy_cache(v) for v in cache)
    return cache.copy() if isinstance(cache, np.ndarray) else cache


def check_clip_grad_norm(fn: Callable, trials: int = 6, seed: int = 11) -> None:
    """Check ``fn(grads, max_norm) -> clipped`` against ``seqmem.bptt.clip_grad_norm``.

    ``grads`` is a dict of NumPy arrays; ``clipped`` must be a new dict with the same keys, where
    every array is scaled by ``max_norm / total_norm`` when the total (global L2) norm of all the
    arrays exceeds ``max_norm``, and left unchanged otherwise. The input dict must not be modified.
    """
    from . import bptt

    item = "clip_grad_norm"
    rng = np.random.default_rng(seed)
    for k in range(trials):
        grads = {f"g{i}": rng.normal(0, 3, size=tuple(rng.integers(1, 5, size=rng.integers(1, 3))))
                 for i in range(int(rng.integers(1, 4)))}
        norm = float(np.sqrt(sum((g ** 2).sum() for g in grads.values())))
        max_norm = norm * (0.3 if k % 2 == 0 else 2.0)  # half the trials clip, half do not
        originals = {n: g.copy() for n, g in grads.items()}
        got = _call(item, fn, grads, max_norm)
        for n in grads:
            if not np.array_equal(grads[n], originals[n]):
                _fail(item, f"the input array '{n}' was modified in place; return new arrays instead")
        expected, _ = bptt.clip_grad_norm(originals, max_norm)
        if type(got) is not dict or set(got) != set(expected):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            _fail(item, f"expected a dict with the keys {sorted(expected)}, got {keys}")
        for n, value in expected.items():
            _guard_array(f"{item}['{n}']", got[n], value.shape, value.dtype)
            _close(item, got[n], value, what=f"clipped gradient '{n}' (max_norm {max_norm:.3g})")


# ---------------------------------------------------------------------------------------------
# Homework 2: LSTM, GRU, CIFG, the counting cell of the lecture, CTC
# ---------------------------------------------------------------------------------------------

def _cell_cases(seed: int, trials: int, gates: int):
    """Fresh random cases for a gated cell whose weights have ``gates`` blocks of H rows.

    Yields ``(x, h, c, W_ih, W_hh, b_ih, b_hh)`` with x (B, I), h and c (B, H), W_ih (gates H, I),
    W_hh (gates H, H), biases (gates H,); float32 and float64 alternate, B = 1 and H = 1 included.
    """
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    sizes = [(1, 1, 1), (3, 2, 4)] + [tuple(int(v) for v in rng.integers(1, 7, size=3)) for _ in range(trials)]
    for k, (B, I, H) in enumerate(sizes[:trials]):
        dtype = torch.float64 if k % 2 else torch.float32

        def randn(*shape):
            return torch.randn(*shape, generator=g, dtype=dtype)
        yield randn(B, I), randn(B, H), randn(B, H), randn(gates * H, I), randn(gates * H, H), \
            randn(gates * H), randn(gates * H)


def _guard_pair(item: str, out: Any, shape: tuple, dtype: torch.dtype) -> tuple:
    """The type guard for a cell that returns (h', c'): a tuple of two exact tensors."""
    if not isinstance(out, tuple) or len(out) != 2:
        got = f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (tuple, list)) else type(out).__name__
        _fail(item, f"expected a tuple (h_next, c_next) of two tensors of shape {shape}, got {got}")
    h_next, c_next = tuple.__getitem__(out, 0), tuple.__getitem__(out, 1)
    _guard_tensor(f"{item} (h_next)", h_next, shape, dtype)
    _guard_tensor(f"{item} (c_next)", c_next, shape, dtype)
    return h_next.detach(), c_next.detach()


def _lstm_reference(x, h, c, W_ih, W_hh, b_ih, b_hh, variant="NP"):
    """(h', c') of the library's LSTM step: NP is torch's cell (gates i, f, g, o); CIFG, blocks
    i, g, o and f = 1 - i, is given zero peepholes (the homework's CIFG has none)."""
    from .lstm import LSTMState, lstm_step

    params = {"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    if variant == "CIFG":
        params["peephole"] = h.new_zeros(2, h.shape[1])  # (2, H): p_i, p_o
    state, _ = lstm_step(x, LSTMState(h, c), params, variant)
    return state.h, state.c


def _cifg_reference(*args):
    return _lstm_reference(*args, variant="CIFG")


def _gru_reference(x, h, W_ih, W_hh, b_ih, b_hh):
    """h' of the library's GRU step in torch's form: gates r, z, n, reset after the product W_hn h."""
    from .gru import gru_step

    params = {"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh}
    return gru_step(x, h, params, reset_after=True)[0]


def _check_lstm_like(item: str, fn: Callable, reference: Callable, gates: int, trials: int, seed: int):
    for x, h, c, W_ih, W_hh, b_ih, b_hh in _cell_cases(seed, trials, gates):
        args = (x, h, c, W_ih, W_hh, b_ih, b_hh)
        out = _call(item, fn, *(a.clone() for a in args))
        expected_h, expected_c = reference(*args)
        got_h, got_c = _guard_pair(item, out, tuple(h.shape), h.dtype)
        B, I, H = x.shape[0], x.shape[1], h.shape[1]
        _close(item, got_c, expected_c, what=f"c_next for B={B}, I={I}, H={H} ({h.dtype})")
        _close(item, got_h, expected_h, what=f"h_next for B={B}, I={I}, H={H} ({h.dtype})")


def check_lstm_cell_forward(fn: Callable, trials: int = 6, seed: int = 303) -> None:
    """Check ``fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_next, c_next)``, torch's LSTM cell.

    Gates in torch's order i, f, g, o: W_ih (4H, I), W_hh (4H, H), b_ih and b_hh (4H,); x (B, I);
    h, c, h_next and c_next (B, H). Tried in float32 and float64.
    """
    _check_lstm_like("lstm_cell_forward", fn, _lstm_reference, 4, trials, seed)


def check_cifg_cell_forward(fn: Callable, trials: int = 6, seed: int = 307) -> None:
    """Check ``fn(x, h, c, W_ih, W_hh, b_ih, b_hh) -> (h_next, c_next)``, the CIFG variant.

    The forget gate is coupled to the input gate, f = 1 - i, so the weights have three blocks in
    the order i, g, o: W_ih (3H, I), W_hh (3H, H), b_ih and b_hh (3H,). Shapes otherwise as for
    ``check_lstm_cell_forward``.
    """
    _check_lstm_like("cifg_cell_forward", fn, _cifg_reference, 3, trials, seed)


def check_gru_cell_forward(fn: Callable, trials: int = 6, seed: int = 311) -> None:
    """Check ``fn(x, h, W_ih, W_hh, b_ih, b_hh) -> h_next``, torch's GRU cell.

    Gates in torch's order r, z, n: W_ih (3H, I), W_hh (3H, H), b_ih and b_hh (3H,);
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h_next = (1 - z) * n + z * h, all (B, H).
    """
    item = "gru_cell_forward"
    for x, h, _, W_ih, W_hh, b_ih, b_hh in _cell_cases(seed, trials, 3):
        args = (x, h, W_ih, W_hh, b_ih, b_hh)
        out = _call(item, fn, *(a.clone() for a in args))
        expected = _gru_reference(*args)
        _guard_tensor(item, out, tuple(h.shape), h.dtype)
        B, I, H = x.shape[0], x.shape[1], h.shape[1]
        _close(item, out.detach(), expected, what=f"h_next for B={B}, I={I}, H={H} ({h.dtype})")


def _guard_weights(item: str, out: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The counting cell's weights: a tuple (W, b) of exact, finite float tensors (4, 3) and (4,)."""
    if not isinstance(out, tuple) or len(out) != 2:
        _fail(item, f"expected a tuple (W, b) of two tensors, W (4, 3) and b (4,), got {type(out).__name__}")
    for name, value, shape in (("W", tuple.__getitem__(out, 0), (4, 3)), ("b", tuple.__getitem__(out, 1), (4,))):
        if type(value) is not torch.Tensor or not value.is_floating_point():
            _fail(item, f"expected {name} to be a floating-point torch.Tensor, got {type(value).__name__}"
                  + (f" of dtype {value.dtype}" if isinstance(value, torch.Tensor) else ""))
        if tuple(value.shape) != shape:
            _fail(item, f"expected {name} of shape {shape}, got {tuple(value.shape)}")
        if not torch.isfinite(value).all():
            _fail(item, f"{name} has entries that are not finite numbers")
    return tuple.__getitem__(out, 0).detach().double(), tuple.__getitem__(out, 1).detach().double()


def counting_sequences(generator: torch.Generator, T: int, B: int) -> torch.Tensor:
    """Random inputs for the lecture's counting cell, (T, B, 3): x1 an integer 0..9, the number;
    x2 = 1 (add x1 to the memory, 40 %), -1 (reset it, 15 %) or 0; x3 = 1 (show the memory, 30 %) or 0."""
    x1 = torch.randint(0, 10, (T, B), generator=generator).double()
    u = torch.rand(T, B, generator=generator, dtype=torch.float64)
    x2 = (u < 0.4).double() - (u > 0.85).double()
    x3 = (torch.rand(T, B, generator=generator, dtype=torch.float64) < 0.3).double()
    return torch.stack([x1, x2, x3], dim=-1)  # (T, B, 3)


def counter_outputs(xs: torch.Tensor) -> torch.Tensor:
    """What the lecture's memory cell outputs for inputs xs (T, B, 3): (T, B).

    The memory starts at 0; at each step x2 = -1 resets it, x2 = 1 adds x1 to it, and the output is
    the memory (after the step's update) when x3 = 1, else 0.
    """
    c = xs.new_zeros(xs.shape[1])  # (B,)
    ys = []
    for x in xs:  # (B, 3)
        c = torch.where(x[:, 1] == -1, 0.0, c) + torch.where(x[:, 1] == 1, x[:, 0], 0.0)
        ys.append(torch.where(x[:, 2] == 1, c, 0.0))
    return torch.stack(ys)  # (T, B)


def run_counting_cell(W: torch.Tensor, b: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Run the lecture's one-cell LSTM with weights W (4, 3), b (4,) (rows i, f, g, o) on xs (T, B, 3).

    z = W x + b; i, f, o = σ(z_i), σ(z_f), σ(z_o); g = z_g (no squashing); c' = f c + i g; the
    output y = o c' (no squashing either); c = 0 at the start. The lecture's cell has no recurrent
    weights. It is ``seqmem.LSTMCell(3, 1)`` with identity activations and W_hh = 0, in W's dtype.
    Returns y, (T, B).
    """
    from .core import unroll
    from .lstm import LSTMCell

    cell = LSTMCell(3, 1, input_activation=_same, output_activation=_same, dtype=W.dtype, fused=False)
    with torch.no_grad():
        for p, value in ((cell.weight_ih, W), (cell.bias_ih, b), (cell.weight_hh, 0.0), (cell.bias_hh, 0.0)):
            p.copy_(torch.as_tensor(value, dtype=W.dtype))
        ys, _ = unroll(cell, xs.to(W.dtype))  # (T, B, 1)
    return ys[..., 0]  # (T, B)


def _same(a: torch.Tensor) -> torch.Tensor:
    """The identity: the lecture's cell squashes neither its input nor its output."""
    return a


def check_counting_lstm(fn: Callable, trials: int = 8, seed: int = 313, atol: float = 0.1) -> None:
    """Check that ``fn() -> (W, b)`` makes the lecture's one-cell LSTM a counting memory.

    The cell built from W (4, 3) and b (4,) (``run_counting_cell``) runs on random sequences of 5
    to 20 steps (``counting_sequences``); every output must be within ``atol`` of the counter's
    (``counter_outputs``).
    """
    item = "counting_lstm"
    W, b = _guard_weights(item, _call(item, fn))
    g = torch.Generator().manual_seed(seed)
    for _ in range(trials):
        T = int(torch.randint(5, 21, (), generator=g))
        xs = counting_sequences(g, T, 16)  # (T, 16, 3)
        ys, expected = run_counting_cell(W, b, xs), counter_outputs(xs)  # (T, 16) each
        wrong = ((ys - expected).abs() > atol) | ~torch.isfinite(ys)  # (T, 16)
        if wrong.any():
            n = int(wrong.any(dim=0).nonzero()[0])  # the first sequence the cell gets wrong
            rows = "\n".join(f"  x = ({x[0]:.0f}, {x[1]:+.0f}, {x[2]:.0f})   counter {e:6.2f}   your cell {y:10.4g}"
                             for x, e, y in zip(xs[:, n].tolist(), expected[:, n].tolist(), ys[:, n].tolist()))
            _fail(item, f"on this random sequence an output is more than {atol} from the counter's:\n{rows}")


def _ctc_reference(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log p(target | log_probs) by the library's CTC in float64, blank 0; inf where impossible."""
    from . import ctc

    nll = ctc.ctc_loss(log_probs.double(), target, log_probs.shape[0], target.shape[0], blank=0,
                       reduction="none")  # unbatched: a 0-dim tensor
    return nll.to(log_probs.dtype)


def _ctc_cases(seed: int, trials: int):
    """(log_probs (T, C), target (S,)): repeated labels, the shortest possible T, impossible cases."""
    g = torch.Generator().manual_seed(seed)
    fixed = [([1, 1], 3, 3), ([2, 2, 1], 3, 3), ([1], 1, 2), ([1, 2, 3, 1], 3, 5), ([3, 3, 3], 7, 4)]
    for k in range(trials):  # (target, T, C): T = 3 is the least for [1, 1], too short for [2, 2, 1]
        if k < len(fixed):
            labels, T, C = fixed[k]
            target = torch.tensor(labels)
        else:
            C = int(torch.randint(2, 7, (), generator=g))
            target = torch.randint(1, C, (int(torch.randint(1, 6, (), generator=g)),), generator=g)
            shortest = len(target) + int((target[1:] == target[:-1]).sum())
            T = shortest + int(torch.randint(-1, 6, (), generator=g))  # one in seven cannot be done
        dtype = torch.float64 if k % 2 else torch.float32
        scale = 1 + 2 * torch.rand((), generator=g)  # from flat to peaked distributions
        yield torch.log_softmax(scale * torch.randn(max(T, 1), C, generator=g), dim=1).to(dtype), target


def check_ctc_nll(fn: Callable, trials: int = 10, seed: int = 317) -> None:
    """Check ``fn(log_probs, target) -> nll`` against ``seqmem.ctc.ctc_loss`` for one sequence.

    log_probs (T, C) are log-softmax outputs over C classes, class 0 the blank; target (S,) the
    labels (int64, 1..C-1, S >= 1). nll = -log p(target | log_probs), a 0-dim tensor with
    log_probs' dtype, inf when T is too short for the target.
    """
    item = "ctc_nll"
    for log_probs, target in _ctc_cases(seed, trials):
        out = _call(item, fn, log_probs.clone(), target.clone())
        expected = _ctc_reference(log_probs, target)
        _guard_tensor(item, out, (), log_probs.dtype)
        tol = {"rtol": 1e-5, "atol": 1e-5} if log_probs.dtype == torch.float32 else {}
        _close(item, out.detach(), expected, **tol,
               what=f"nll for T={log_probs.shape[0]}, C={log_probs.shape[1]}, target={target.tolist()}")

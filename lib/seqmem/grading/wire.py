"""The safe format between the autograder and the sandboxed worker: plain data, never pickle.

A message is one frame: an 8-byte header (the JSON part's length and the raw part's length, 4
bytes each, big-endian), a UTF-8 JSON object, then the raw bytes of the arrays it describes. A
value inside the JSON is a node:

    {"t": "none"} | {"t": "bool", "v": true} | {"t": "int", "v": "12"} | {"t": "float", "v": "0.5"}
    {"t": "str", "v": "..."} | {"t": "tuple" | "list", "items": [node, ...]}
    {"t": "dict", "items": [["key", node], ...]}                      (string keys only)
    {"t": "tensor", "dtype": "float32", "shape": [2, 3], "at": 0, "size": 24}     (raw bytes)
    {"t": "ndarray", "dtype": "<f8", "shape": [4], "at": 24, "size": 32}
    {"t": "npscalar", "dtype": "<f8", "v": "0.5"}
    {"t": "foreign", "type": "Anything"}                   (what the worker could not send)

Decoding builds exactly these types and nothing else: a tensor comes back as a plain, contiguous
``torch.Tensor`` on the CPU, whatever subclass the student returned, and anything else the
student's function returns (an object whose ``==`` always says yes, a module, a generator)
arrives as an instance of ``Foreign`` named after its type, which every type guard refuses with a
message naming it. Limits on size, depth and count make a malformed or hostile message an error,
never a crash or a memory blow-up of the trusted process: the JSON part is at most ``MAX_HEAD``
bytes, the raw part is read once (each array's bytes follow the previous one's, and they cover it
exactly), and any exception while reading becomes ``WireError``.
"""
from __future__ import annotations

import json
import math
import os
import select
import struct
import time

import numpy as np
import torch

MAX_FRAME = 256 << 20  # bytes of one message, JSON and raw parts together
MAX_HEAD = 8 << 20  # bytes of its JSON part (JSON decodes to many times its size)
MAX_DEPTH = 16
MAX_NODES = 100_000
MAX_STR = 1 << 20

_TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool)}
_NUMPY_KINDS = "biufc"  # bool, signed, unsigned, float, complex: never object, void or strings


class WireError(ValueError):
    """A message that breaks the format or its limits."""


class Foreign:
    """What arrived in place of a value the worker could not send (its type name only)."""

    type_name = "object"

    def __repr__(self) -> str:
        return f"<a {self.type_name} from the student's code>"


_FOREIGN_TYPES: dict[str, type] = {}
MAX_FOREIGN_TYPES = 256  # names remembered; past them every foreign value is an "object"


def foreign(type_name: str) -> Foreign:
    """An instance of a ``Foreign`` subclass named ``type_name`` (so that ``type(x).__name__``
    in a check's message names what the student returned)."""
    name = type_name if type_name.isidentifier() and len(type_name) <= 64 else "object"
    if name not in _FOREIGN_TYPES:
        if len(_FOREIGN_TYPES) >= MAX_FOREIGN_TYPES:
            name = "object"
        _FOREIGN_TYPES.setdefault(name, type(name, (Foreign,), {"type_name": name, "__module__": "student"}))
    return _FOREIGN_TYPES[name]()


# ------------------------------------------------------------------------------ encoding

def encode(value) -> bytes:
    """One frame holding ``value``; values of other types become ``foreign`` nodes."""
    raw: list[bytes] = []
    offset = [0]

    def add(data: bytes) -> tuple[int, int]:
        at = offset[0]
        raw.append(data)
        offset[0] += len(data)
        return at, len(data)

    def node(v, depth: int):
        if depth > MAX_DEPTH:
            return {"t": "foreign", "type": "deeply_nested"}
        t = type(v)
        if v is None:
            return {"t": "none"}
        if t is bool:
            return {"t": "bool", "v": v}
        if t is int:
            return {"t": "int", "v": str(v)}
        if t is float:
            return {"t": "float", "v": repr(v)}
        if t is str:
            return {"t": "str", "v": v[:MAX_STR]}
        if isinstance(v, torch.Tensor) and t in (torch.Tensor, torch.nn.Parameter):
            return _tensor_node(v, add)
        if t is np.ndarray:
            return _array_node(v, add)
        if isinstance(v, np.generic) and v.dtype.kind in _NUMPY_KINDS:
            return {"t": "npscalar", "dtype": v.dtype.str, "v": repr(v.item())}
        if isinstance(v, tuple):  # a NamedTuple travels as a plain tuple, read past any override
            return {"t": "tuple", "items": [node(x, depth + 1) for x in tuple.__iter__(v)]}
        if t is list:
            return {"t": "list", "items": [node(x, depth + 1) for x in list.__iter__(v)]}
        if t is dict and all(type(k) is str for k in dict.keys(v)):
            return {"t": "dict", "items": [[k, node(x, depth + 1)] for k, x in dict.items(v)]}
        return {"t": "foreign", "type": t.__name__}

    head = json.dumps(node(value, 0)).encode()
    body = b"".join(raw)
    if len(head) > MAX_HEAD or len(head) + len(body) > MAX_FRAME:
        head, body = json.dumps({"t": "foreign", "type": "too_large"}).encode(), b""
    return struct.pack(">II", len(head), len(body)) + head + body


def _tensor_node(v: torch.Tensor, add) -> dict:
    name = str(v.dtype).removeprefix("torch.")
    if name not in _TORCH_DTYPES or v.layout != torch.strided:
        return {"t": "foreign", "type": f"Tensor_{name}"}
    data = v.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
    as_bytes = data.view(torch.uint8) if data.dim() > 0 else data.reshape(1).view(torch.uint8)
    at, size = add(as_bytes.numpy().tobytes())
    return {"t": "tensor", "dtype": name, "shape": list(data.shape), "at": at, "size": size}


def _array_node(v: np.ndarray, add) -> dict:
    if v.dtype.kind not in _NUMPY_KINDS:
        return {"t": "foreign", "type": f"ndarray_{v.dtype.kind}"}
    at, size = add(np.ascontiguousarray(v).tobytes())
    return {"t": "ndarray", "dtype": v.dtype.str, "shape": list(v.shape), "at": at, "size": size}


# ------------------------------------------------------------------------------ decoding

def decode(frame: bytes):
    """The value of one frame (see the module's docstring); ``WireError`` if it is malformed."""
    if len(frame) < 8:
        raise WireError("a message shorter than its header")
    n_head, n_body = struct.unpack(">II", frame[:8])
    if 8 + n_head + n_body != len(frame):
        raise WireError("a message whose length does not match its header")
    if n_head > MAX_HEAD:
        raise WireError(f"a message whose JSON part has {n_head} bytes (the limit is {MAX_HEAD})")
    body = memoryview(frame)[8 + n_head:]
    try:
        tree = json.loads(frame[8:8 + n_head].decode())
        cursor = [0, 0]  # the next array's first byte, the number of values read
        value = _value(tree, body, 0, cursor)
    except WireError:
        raise
    except Exception as err:  # bad JSON, deep nesting, int("x"), impossible shapes, ...
        raise WireError(f"a message that cannot be read ({type(err).__name__}: {str(err)[:200]})") from None
    if cursor[0] != len(body):
        raise WireError("a message with raw bytes that no value uses")
    return value


def _value(n, body, depth: int, count: list):
    count[1] += 1
    if count[1] > MAX_NODES or depth > MAX_DEPTH:
        raise WireError("a message nested too deeply or with too many values")
    if type(n) is not dict or type(n.get("t")) is not str:
        raise WireError("a value without its type")
    t = n["t"]
    if t == "none":
        return None
    if t == "bool":
        return _typed(n.get("v"), bool)
    if t == "int":
        return int(_typed(n.get("v"), str)[:4300])
    if t == "float":
        return _float(n.get("v"))
    if t == "str":
        return _typed(n.get("v"), str)[:MAX_STR]
    if t in ("tuple", "list"):
        items = [_value(x, body, depth + 1, count) for x in _typed(n.get("items"), list)]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {_typed(k, str): _value(x, body, depth + 1, count)
                for k, x in (_pair(p) for p in _typed(n.get("items"), list))}
    if t == "tensor":
        return _tensor(n, body, count)
    if t == "ndarray":
        return _ndarray(n, body, count)
    if t == "npscalar":
        dtype = _numpy_dtype(n.get("dtype"))
        return dtype.type(complex(_typed(n.get("v"), str)) if dtype.kind == "c" else _float(n.get("v")))
    if t == "foreign":
        return foreign(str(n.get("type", "object"))[:64])
    raise WireError(f"an unknown type {t[:40]!r}")


def _typed(v, kind):
    if type(v) is not kind:
        raise WireError(f"expected a {kind.__name__} in the message")
    return v


def _pair(p):
    if type(p) is not list or len(p) != 2:
        raise WireError("a dict entry that is not a [key, value] pair")
    return p


def _float(v) -> float:
    text = _typed(v, str)
    try:
        return float(text)
    except ValueError:
        raise WireError(f"a float that is not a number: {text[:40]!r}") from None


def _shape(n) -> tuple:
    shape = _typed(n.get("shape"), list)
    if len(shape) > 16 or any(type(d) is not int or d < 0 for d in shape):
        raise WireError("a shape that is not a list of at most 16 sizes")
    return tuple(shape)


def _raw(n, body, itemsize: int, shape: tuple, cursor: list) -> memoryview:
    """An array's bytes: the ones right after the previous array's, so that each is read once."""
    at, size = n.get("at"), n.get("size")
    if type(at) is not int or type(size) is not int or at != cursor[0] or at + size > len(body):
        raise WireError("an array whose bytes lie outside the message or overlap another's")
    if size != itemsize * math.prod(shape):
        raise WireError(f"an array of shape {shape} with {size} bytes")
    cursor[0] = at + size
    return body[at:at + size]


def _tensor(n, body, cursor: list) -> torch.Tensor:
    dtype = _TORCH_DTYPES.get(n.get("dtype"))
    if dtype is None:
        raise WireError(f"a tensor of unknown dtype {str(n.get('dtype'))[:40]!r}")
    shape = _shape(n)
    itemsize = torch.empty((), dtype=dtype).element_size()
    data = bytearray(_raw(n, body, itemsize, shape, cursor))
    if not data:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(data, dtype=dtype).reshape(shape)


def _numpy_dtype(name) -> np.dtype:
    try:
        dtype = np.dtype(_typed(name, str))
    except TypeError:
        raise WireError(f"an unknown NumPy dtype {str(name)[:40]!r}") from None
    if dtype.kind not in _NUMPY_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"a NumPy dtype that is not a number: {str(name)[:40]!r}")
    return dtype


def _ndarray(n, body, cursor: list) -> np.ndarray:
    dtype, shape = _numpy_dtype(n.get("dtype")), _shape(n)
    return np.frombuffer(_raw(n, body, dtype.itemsize, shape, cursor), dtype=dtype).reshape(shape).copy()


# ------------------------------------------------------------------------------ pipes

class Closed(EOFError):
    """The other end of the pipe went away (the worker ended)."""


class TimedOut(TimeoutError):
    """Nothing complete arrived before the deadline."""


def send(fd: int, frame: bytes, deadline: float | None = None) -> None:
    """Write ``frame`` to ``fd``; with a ``deadline``, ``TimedOut`` if the reader does not take it
    all by then (``fd`` must then be non-blocking), so that a reader that stops cannot hang us."""
    view = memoryview(frame)
    while view:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([], [fd], [], wait)[1]:
                raise TimedOut("the other side stopped reading")
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue
        except BrokenPipeError:
            raise Closed("the pipe is closed") from None


class Reader:
    """Whole frames from a pipe; bytes of a frame that has not fully arrived wait for the next call."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, bytearray()

    def frame(self, deadline: float | None = None) -> bytes:
        """The next frame; ``TimedOut`` after ``deadline`` (a ``time.monotonic()``), ``Closed`` at
        end of file, ``WireError`` for a frame over ``MAX_FRAME``."""
        self._fill(8, deadline)
        n_head, n_body = struct.unpack(">II", self.buffer[:8])
        if n_head + n_body > MAX_FRAME:
            raise WireError(f"a message of {n_head + n_body} bytes (the limit is {MAX_FRAME})")
        self._fill(8 + n_head + n_body, deadline)
        frame = bytes(self.buffer[:8 + n_head + n_body])
        del self.buffer[:8 + n_head + n_body]
        return frame

    def _fill(self, n: int, deadline: float | None) -> None:
        while len(self.buffer) < n:
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([self.fd], [], [], wait)[0]:
                    raise TimedOut("no reply before the deadline")
            chunk = os.read(self.fd, min(n - len(self.buffer), 1 << 20))
            if not chunk:
                raise Closed("the pipe is closed")
            self.buffer += chunk


def receive(fd: int, deadline: float | None = None) -> bytes:
    """One whole frame from ``fd`` (for a reader that never times out half-way: the worker)."""
    return Reader(fd).frame(deadline)

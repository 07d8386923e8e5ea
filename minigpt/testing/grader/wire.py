"""What crosses the pipe between the grader and its worker: values as JSON, arrays as ``.npy`` bytes, never pickle.

Unpickling runs code chosen by whoever wrote the bytes, and the worker's bytes are written by the student's
code; JSON and ``np.load(allow_pickle=False)`` only ever build data. A value is one of: None, bool, int, float,
str, list, tuple, dict, a NumPy array or scalar (any dtype but ``object``), a ``GPTConfig``, a NumPy random
``Generator`` (by its state), or a callable — sent as a handle that the other side calls back through the pipe.

A message is an 8-byte big-endian length and that many bytes of UTF-8 JSON; a length over ``limit`` is refused
before anything is read, so a runaway worker cannot make the grader allocate without bound.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np

MAX_MESSAGE = 256 * 2**20  # bytes: the largest reply the grader reads (student outputs are small arrays)
_LENGTH = 8


class WireError(ValueError):
    """A value that cannot be sent, or bytes that are not a message; the text says which."""


def _npy(array: np.ndarray) -> str:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _from_npy(text: Any) -> np.ndarray:
    if not isinstance(text, str):
        raise WireError("an array's bytes are not base64 text")
    try:
        return np.load(io.BytesIO(base64.b64decode(text, validate=True)), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise WireError(f"an array is not valid .npy bytes ({e})") from None


def encode(value: Any, callback: Callable[[Callable[..., Any]], int] | None = None, depth: int = 0) -> Any:
    """``value`` as JSON-ready data; ``callback(fn)`` gives the handle of a callable (None: callables refused)."""
    if depth > 64:
        raise WireError("the value is nested more than 64 levels deep")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int) and not isinstance(value, np.integer):
        return value if type(value) in (int,) else int(value)
    if isinstance(value, float) and not isinstance(value, np.floating):
        return {"$float": repr(float(value))}  # repr keeps nan/inf and every digit
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype == object:
            raise WireError("a NumPy array of Python objects; use a numeric or bool dtype")
        return {"$npy": _npy(array), "scalar": isinstance(value, np.generic)}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, callback, depth + 1) for v in value]}
    if isinstance(value, list):
        return [encode(v, callback, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise WireError("a dict with keys that are not strings")
        return {"$dict": [[k, encode(v, callback, depth + 1)] for k, v in value.items()]}
    if isinstance(value, np.random.Generator):
        return {"$rng": encode(value.bit_generator.state, None, depth + 1)}
    config = _config_types().get(type(value).__name__)
    if config is not None and type(value) is config:
        return {"$config": type(value).__name__, "fields": encode(dataclasses.asdict(value), None, depth + 1)}
    if hasattr(value, "__array__") and not callable(value):  # a JAX array: its NumPy value
        return encode(np.asarray(value), callback, depth)
    if callable(value) and callback is not None:
        return {"$callable": int(callback(value))}
    raise WireError(f"a {type(value).__name__}, which the grader cannot read; return arrays, numbers, lists, dicts")


def decode(data: Any, stub: Callable[[int], Callable[..., Any]] | None = None, depth: int = 0) -> Any:
    """The value ``encode`` wrote; ``stub(handle)`` builds the callable for a handle (None: handles refused)."""
    if depth > 64:
        raise WireError("the message is nested more than 64 levels deep")
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, list):
        return [decode(v, stub, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) == 0:
        raise WireError(f"unexpected {type(data).__name__} in a message")
    if "$float" in data:
        try:
            return float(data["$float"])
        except (TypeError, ValueError):
            raise WireError("a float that is not a number") from None
    if "$npy" in data:
        array = _from_npy(data["$npy"])
        return array[()] if data.get("scalar") is True and array.ndim == 0 else array
    if "$tuple" in data and isinstance(data["$tuple"], list):
        return tuple(decode(v, stub, depth + 1) for v in data["$tuple"])
    if "$dict" in data and isinstance(data["$dict"], list):
        items = data["$dict"]
        if not all(isinstance(i, list) and len(i) == 2 and isinstance(i[0], str) for i in items):
            raise WireError("a dict whose items are not [key, value] pairs")
        return {k: decode(v, stub, depth + 1) for k, v in items}
    if "$rng" in data:
        state = decode(data["$rng"], None, depth + 1)
        try:
            bit_generator = getattr(np.random, state["bit_generator"])()
            bit_generator.state = state
        except (AttributeError, KeyError, TypeError, ValueError):
            raise WireError("a random generator's state that NumPy does not accept") from None
        return np.random.Generator(bit_generator)
    if "$config" in data:
        kind = _config_types().get(data["$config"])
        fields = decode(data.get("fields"), None, depth + 1)
        if kind is None or not isinstance(fields, dict):
            raise WireError(f"an unknown configuration {data['$config']!r}")
        try:
            return kind(**fields)
        except (TypeError, ValueError) as e:
            raise WireError(f"a {data['$config']} the grader cannot rebuild ({e})") from None
    if "$callable" in data and stub is not None and isinstance(data["$callable"], int):
        return stub(data["$callable"])
    raise WireError(f"unexpected object with keys {sorted(data)[:4]} in a message")


def _config_types() -> dict[str, type]:
    from minigpt.config import GPTConfig  # plumbing every worker imports anyway; imported late to keep this light

    return {"GPTConfig": GPTConfig}


def send(fd: int, message: dict[str, Any]) -> None:
    """Write one message (already encoded values) to file descriptor ``fd``."""
    body = json.dumps(message, ensure_ascii=False, allow_nan=False).encode("utf-8")
    data = len(body).to_bytes(_LENGTH, "big") + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(fd: int, limit: int = MAX_MESSAGE) -> dict[str, Any] | None:
    """The next message from ``fd``; None at end of file. Raises WireError for anything that is not one."""
    head = _read_exactly(fd, _LENGTH)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > limit:
        raise WireError(f"a message of {size} bytes, over the limit of {limit}")
    body = _read_exactly(fd, size)
    if body is None:
        return None
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"a message that is not JSON ({e})") from None
    if not isinstance(message, dict):
        raise WireError("a message that is not a JSON object")
    return message

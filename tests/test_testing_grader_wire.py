"""What crosses the grader's pipe (minigpt.testing.grader.wire): values come back exact, pickle and objects are
refused, and a message over the size limit is refused before it is read."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minigpt.config import GPTConfig
from minigpt.testing.grader import wire


def test_the_wire_refuses_pickle_and_keeps_values_exact():
    value = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "t": (1, 2.5, float("nan"), None, "s", [True]),
        "cfg": GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4),
        "x": np.float64(0.1),
    }
    back = wire.decode(json.loads(json.dumps(wire.encode(value))))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], value["a"])
    assert back["t"][:2] == (1, 2.5) and np.isnan(back["t"][2]) and back["t"][3:] == (None, "s", [True])
    assert back["cfg"] == value["cfg"] and back["x"] == value["x"] and isinstance(back["x"], np.float64)
    rng = wire.decode(wire.encode(np.random.default_rng(3)))
    assert rng.integers(0, 10**9) == np.random.default_rng(3).integers(0, 10**9)
    with pytest.raises(wire.WireError, match="Python objects"):
        wire.encode(np.array([object()]))
    with pytest.raises(wire.WireError):
        wire.decode({"$npy": "gASVAAAAAAAAAAA="})  # pickle bytes are not .npy


def test_callables_travel_as_handles_and_messages_are_framed():
    handles = []
    data = wire.encode({"f": len}, lambda fn: handles.append(fn) or len(handles) - 1)
    assert handles == [len] and wire.decode(data, lambda h: ("stub", h)) == {"f": ("stub", 0)}
    with pytest.raises(wire.WireError, match="cannot read"):
        wire.encode(len)  # no handle to give: refused
    r, w = os.pipe()
    try:
        wire.send(w, {"a": 1})
        assert wire.receive(r) == {"a": 1}
        os.write(w, (10**9).to_bytes(8, "big"))
        with pytest.raises(wire.WireError, match="over the limit"):
            wire.receive(r, limit=1000)
    finally:
        os.close(r)
        os.close(w)

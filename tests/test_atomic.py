"""minigpt.atomic: a write replaces the whole file or leaves the old one, and nothing else behind."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt import atomic

texts = st.text(st.characters(blacklist_categories=["Cs"]))  # every string UTF-8 can encode


@given(old=st.none() | texts, new=texts)
def test_a_write_replaces_the_file_and_leaves_nothing_else(old, new):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "vocab.json"
        if old is not None:
            path.write_bytes(old.encode("utf-8"))
        atomic.write_text(path, new)
        assert path.read_bytes() == new.encode("utf-8")
        assert [p.name for p in Path(d).iterdir()] == ["vocab.json"]


@given(old=texts, good=texts, bad=st.characters(categories=["Cs"]))
def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(old, good, bad):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "config.json"
        path.write_bytes(old.encode("utf-8"))
        with pytest.raises(UnicodeEncodeError):  # a lone surrogate fails half-way through the write
            atomic.write_text(path, good + bad)
        assert path.read_bytes() == old.encode("utf-8")
        assert [p.name for p in Path(d).iterdir()] == ["config.json"]

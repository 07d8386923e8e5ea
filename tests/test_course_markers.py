"""minigpt.course.markers: a source cell built from known pieces strips to exactly the student's pieces; markers
that do not pair up are refused naming the line; links are re-pointed; outputs are cleared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt.course.markers import (
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    END_HIDDEN,
    END_SOLUTION,
    MarkerError,
    dumps,
    strip_cell,
    student_notebook,
)

# code lines that are not markers: anything printable without a newline that does not start with "###"
code_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).filter(
    lambda s: not s.strip().startswith("###")
)
indent = st.sampled_from(["", "    ", "        "])
hint = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20).map(str.strip)
segment = st.one_of(
    st.tuples(st.just("plain"), st.lists(code_line, min_size=1, max_size=3)),
    st.tuples(st.just("solution"), indent, hint, st.lists(code_line, max_size=3)),
    st.tuples(st.just("hidden"), st.lists(code_line, max_size=3)),
)


def build(segments) -> tuple[list[str], list[str], int]:
    """(the source cell's lines, the student's lines as they must come out, the number of solution regions)."""
    source, student, solutions = [], [], 0
    for seg in segments:
        if seg[0] == "plain":
            source += seg[1]
            student += seg[1]
        elif seg[0] == "solution":
            _, ind, text, body = seg
            source += [f"{ind}{BEGIN_SOLUTION}" + (f": {text}" if text else ""), *body, f"{ind}{END_SOLUTION}"]
            message = "TODO: " + (text or "your code here")
            student.append(f"{ind}raise NotImplementedError({json.dumps(message, ensure_ascii=False)})")
            solutions += 1
        else:
            source += [BEGIN_HIDDEN, *seg[1], END_HIDDEN]
    return source, student, solutions


@given(st.lists(segment, max_size=6))
def test_a_cell_strips_to_exactly_its_student_pieces(segments):
    source, student, solutions = build(segments)
    out, found = strip_cell([line + "\n" for line in source], "cell")
    assert found == solutions
    assert "".join(out) == "\n".join(student)


@given(indent, hint)
def test_the_stub_is_python_that_raises_the_hint(ind, text):
    (line,), _ = strip_cell([f"{ind}{BEGIN_SOLUTION}: {text}\n", f"{ind}x = 1\n", f"{ind}{END_SOLUTION}\n"], "c")
    code = "def f():\n" + ("    " + line.lstrip() if not ind else line)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - the generated stub must be valid Python
    with pytest.raises(NotImplementedError, match="^TODO: ") as e:
        scope["f"]()
    assert str(e.value) == "TODO: " + (text or "your code here")


@pytest.mark.parametrize(
    "lines, message",
    [
        ([BEGIN_SOLUTION, "x = 1"], "line 1 is never closed; add a '### END SOLUTION' line"),
        ([BEGIN_HIDDEN, "x = 1", END_SOLUTION], "line 3: '### END SOLUTION' but the region opened on line 1 ends"),
        (["x = 1", END_HIDDEN], "line 2: '### END HIDDEN TESTS' but nothing is open"),
        ([BEGIN_SOLUTION, BEGIN_HIDDEN, END_HIDDEN, END_SOLUTION], "line 2: '### BEGIN HIDDEN TESTS' inside"),
    ],
)
def test_markers_that_do_not_pair_up_are_refused_naming_the_line(lines, message):
    with pytest.raises(MarkerError, match="^cell 4") as e:
        strip_cell([line + "\n" for line in lines], "cell 4")
    assert message in str(e.value) and "\n" not in str(e.value)


def notebook(*cells) -> dict:
    return {"cells": list(cells), "metadata": {"minigpt": {"assignment": "x"}}, "nbformat": 4, "nbformat_minor": 5}


def code(source: str, **meta) -> dict:
    output = {"output_type": "stream", "name": "stdout", "text": "hi"}
    cell = {"cell_type": "code", "execution_count": 3, "id": "c", "metadata": meta, "outputs": [output]}
    return {**cell, "source": source}


def test_a_notebook_loses_hidden_cells_and_outputs_and_keeps_everything_else(tmp_path):
    src = notebook(
        {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# Title\n\nsee [the lesson](lesson.ipynb)"},
        code(f"def f():\n    {BEGIN_SOLUTION}: add\n    return 1\n    {END_SOLUTION}", tags=["exercise"]),
        code(f"{BEGIN_HIDDEN}\nsecret()\n{END_HIDDEN}"),
    )
    (tmp_path / "lesson.ipynb").write_text("{}")
    (tmp_path / "source").mkdir()
    out = student_notebook(json.loads(json.dumps(src).replace("lesson.ipynb", "../lesson.ipynb")),
                           tmp_path / "source", tmp_path / "out" / "deep", "src.ipynb")  # fmt: skip
    assert [c["cell_type"] for c in out["cells"]] == ["markdown", "code"]
    assert "".join(out["cells"][0]["source"]).endswith("[the lesson](../../lesson.ipynb)")
    assert "".join(out["cells"][1]["source"]) == 'def f():\n    raise NotImplementedError("TODO: add")'
    assert out["cells"][1]["outputs"] == [] and out["cells"][1]["execution_count"] is None
    assert out["cells"][1]["metadata"] == {"tags": ["exercise"]} and out["metadata"] == src["metadata"]
    assert src["cells"][1]["outputs"]  # the source is not modified
    assert json.loads(dumps(out)) == out


def test_links_that_reach_no_file_or_leave_the_disk_stay_as_they_are(tmp_path):
    text = "[a](missing.ipynb) [b](https://example.org/x.ipynb) [c](#anchor)"
    src = notebook({"cell_type": "markdown", "id": "m", "metadata": {}, "source": text}, code(f"{BEGIN_SOLUTION}\n"
                   f"{END_SOLUTION}"))  # fmt: skip
    out = student_notebook(src, tmp_path, tmp_path / "elsewhere")
    assert "".join(out["cells"][0]["source"]) == text


def test_a_source_without_a_solution_region_is_refused():
    with pytest.raises(MarkerError, match="hw.ipynb has no '### BEGIN SOLUTION'"):
        student_notebook(notebook(code("x = 1")), Path("."), Path("."), "hw.ipynb")

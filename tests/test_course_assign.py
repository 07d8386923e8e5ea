"""``minigpt assign``: the student notebook is written only after the grader scores the solution full and the
stubs 0; a source that fails either is refused in one line and nothing is written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minigpt.cli import main as cli_main
from minigpt.course.assign import EXERCISES, SOURCES
from minigpt.course.markers import BEGIN_SOLUTION, END_SOLUTION, dumps

SOURCE_01 = SOURCES / "01_attention.ipynb"


def variant(tmp_path: Path, function: str, body: str) -> Path:
    """Source 01 with ``function``'s cell replaced by ``body``, saved under tmp_path/src/."""
    nb = json.loads(SOURCE_01.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith(f"def {function}("))
    cell["source"] = body
    path = tmp_path / "src" / SOURCE_01.name
    path.parent.mkdir()
    path.write_text(dumps(nb), encoding="utf-8")
    return path


@pytest.mark.slow
def test_assign_verifies_then_writes_the_student_notebook(tmp_path, capsys):
    assert cli_main(["assign", "01_attention", "--out", str(tmp_path)]) == 0
    assert "01_attention: solution 10 / 10, stubs 0 / 10" in capsys.readouterr().out
    written = json.loads((tmp_path / "01_attention.ipynb").read_text(encoding="utf-8"))
    committed = json.loads((EXERCISES / "01_attention.ipynb").read_text(encoding="utf-8"))
    text = json.dumps(written)
    assert "BEGIN" not in text and "check_graded" not in text and text.count("NotImplementedError(") == 4  # 3 + prose
    # the same notebook as the committed one, but for links, re-pointed from where it was written
    for a, b in zip(written["cells"], committed["cells"], strict=True):
        if a["cell_type"] == "code":
            assert a == b
        else:
            assert re.sub(r"\]\([^)]*\)", "]()", "".join(a["source"])) == re.sub(
                r"\]\([^)]*\)", "]()", "".join(b["source"])
            )
    link = re.search(r"\]\(([^)]*01_attention\.ipynb)\)", "".join(written["cells"][0]["source"])).group(1)
    assert (tmp_path / link).resolve() == (EXERCISES.parent / "01_attention.ipynb").resolve()


@pytest.mark.slow
def test_a_wrong_solution_is_not_released(tmp_path, capsys):
    wrong = (
        f"def softmax(x):\n    {BEGIN_SOLUTION}\n    e = np.exp(x - x.max(axis=0, keepdims=True))\n"
        f"    return e / e.sum(axis=0, keepdims=True)\n    {END_SOLUTION}"
    )
    out = tmp_path / "out"
    assert cli_main(["assign", str(variant(tmp_path, "softmax", wrong)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(r"solution in 01_attention.ipynb scores [\d.]+ / 10, not full marks", err)
    assert "softmax" in err and not out.exists()


@pytest.mark.slow
def test_a_check_that_the_stub_passes_is_not_released(tmp_path, capsys):
    # the marked region comes after the return: the stub never runs its raise, so the "blank" earns points
    leaky = (
        f"def causal_mask(T):\n    return np.triu(np.full((T, T), -np.inf), k=1)\n    {BEGIN_SOLUTION}\n"
        f"    pass\n    {END_SOLUTION}"
    )
    out = tmp_path / "out"
    assert cli_main(["assign", str(variant(tmp_path, "causal_mask", leaky)), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "scores 2 / 10 with its stubs (causal_mask:" in err and not out.exists()


def test_old_names_and_no_verify_write_at_once(tmp_path):
    assert cli_main(["assign", "09_lora", "--out", str(tmp_path), "--no-verify"]) == 0
    assert (tmp_path / "09_transfer_learning.ipynb").is_file()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["assign", "99_nothing", "--out", "{tmp}"], "unknown exercise '99_nothing': give a source .ipynb or one of"),
        (["assign", "{tmp}/missing.ipynb", "--out", "{tmp}"], "no such source notebook"),
        (["assign", "{tmp}/plain.ipynb", "--out", "{tmp}/o", "--no-verify"], "has no '### BEGIN SOLUTION'"),
        (["assign", "{tmp}/broken.ipynb", "--out", "{tmp}/o"], "is not a readable notebook"),
        (["assign", "{tmp}/anon.ipynb", "--out", "{tmp}/o"], "names no assignment: set its metadata"),
        (["assign", str(SOURCE_01), "--out", str(SOURCES), "--no-verify"], "would overwrite the source"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(argv, message, tmp_path, capsys):
    meta = {"minigpt": {"assignment": "01_attention"}}
    plain = {"cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}], "metadata": meta}
    (tmp_path / "plain.ipynb").write_text(json.dumps(plain))
    (tmp_path / "anon.ipynb").write_text(json.dumps({**plain, "metadata": {}}))
    (tmp_path / "broken.ipynb").write_text('{"cells": 5}')
    assert cli_main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err

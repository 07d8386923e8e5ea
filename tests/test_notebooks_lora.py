"""Exercise notebook 09 (LoRA): the solution passes every check, each blank fails with its TODO, and the two
notebooks differ only in the exercise cells. Not a graded assignment (no lesson notebook 09 to pair it with yet);
it runs like the Llama exercises, with their helpers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the dev extras: pip install -e '.[dev]'")
pytest.importorskip("nbclient", reason="install the dev extras: pip install -e '.[dev]'")

from test_notebooks_llama import errors, run  # noqa: E402 - after the dev-extras skip, like that module's imports

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "notebooks" / "exercises" / "09_lora.ipynb"
SOLUTION = ROOT / "notebooks" / "exercises" / "solutions" / "09_lora.ipynb"
CHECKS = ["lora_init", "lora_forward", "lora_step"]


@pytest.mark.parametrize("path", [EXERCISE, SOLUTION], ids=["exercise", "solution"])
def test_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")


def test_exercise_and_solution_differ_only_in_exercise_cells():
    student, solution = (nbformat.read(p, as_version=4) for p in (EXERCISE, SOLUTION))
    assert len(student.cells) == len(solution.cells)
    tagged = 0
    for s, t in zip(student.cells, solution.cells, strict=True):
        if "exercise" in s.metadata.get("tags", []):
            tagged += 1
            assert 'raise NotImplementedError("TODO: ' in s.source and "NotImplementedError" not in t.source
        else:
            assert s.source == t.source
    assert tagged == len(CHECKS)


def test_solution_passes_every_check_and_blanks_fail_with_their_todo(monkeypatch):
    nb = run(SOLUTION, monkeypatch)
    assert not [e for c in nb.cells for e in errors(c)]
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert all(f"{name}: correct" in printed for name in CHECKS)
    nb = run(EXERCISE, monkeypatch, copy.deepcopy(nbformat.read(EXERCISE, as_version=4)))
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.metadata.get("tags", []):
            assert not errors(cell)  # defining the blank is fine; calling it is not
            errs = errors(nb.cells[i + 1])
            assert errs and errs[0]["ename"] == "AssertionError", nb.cells[i + 1].source
            assert "your function raised NotImplementedError: TODO: " in errs[0]["evalue"]

"""The ungraded exercise notebooks (09 LoRA, 10 Llama: no assignment in minigpt.testing.assignments): each
solution passes every checker, each blank fails with its TODO, and exercise and solution differ only in the
exercise cells. (The lesson notebooks run in test_notebooks with the others.)"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the dev extras: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="install the dev extras: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "notebooks" / "exercises"
CHECKS = {
    "09_lora": ["lora_init", "lora_forward", "lora_step"],
    "10_llama": ["rms_norm", "rope", "swiglu", "repeat_kv", "rope_cached_step"],
}


def paths(name: str) -> tuple[Path, Path]:
    return EXERCISES / f"{name}.ipynb", EXERCISES / "solutions" / f"{name}.ipynb"


def run(path: Path, monkeypatch, nb=None):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    nb = nbformat.read(path, as_version=4) if nb is None else nb
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    return nb


def errors(cell) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("name", CHECKS)
def test_committed_clean(name):
    for path in paths(name):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", CHECKS)
def test_exercise_and_solution_differ_only_in_exercise_cells(name):
    student, solution = (nbformat.read(p, as_version=4) for p in paths(name))
    assert len(student.cells) == len(solution.cells)
    tagged = 0
    for s, t in zip(student.cells, solution.cells, strict=True):
        if "exercise" in s.metadata.get("tags", []):
            tagged += 1
            assert 'raise NotImplementedError("TODO: ' in s.source and "NotImplementedError" not in t.source
        else:
            assert s.source == t.source
    assert tagged == len(CHECKS[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", CHECKS)  # each case its own unit of work under xdist (conftest.py)
def test_solution_passes_every_checker_and_blanks_fail_with_their_todo(name, monkeypatch):
    exercise, solution = paths(name)
    nb = run(solution, monkeypatch)
    assert not [e for c in nb.cells for e in errors(c)]
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert all(f"{function}: correct" in printed for function in CHECKS[name])
    nb = run(exercise, monkeypatch, copy.deepcopy(nbformat.read(exercise, as_version=4)))
    for i, cell in enumerate(nb.cells):
        if "exercise" in cell.metadata.get("tags", []):
            assert not errors(cell)  # defining the blank is fine; calling it is not
            errs = errors(nb.cells[i + 1])
            assert errs and errs[0]["ename"] == "AssertionError", nb.cells[i + 1].source
            assert "your function raised NotImplementedError: TODO: " in errs[0]["evalue"]

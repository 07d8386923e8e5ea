"""The tutorial notebooks run top to bottom (their asserts are the test), each lesson has an exercise notebook
graded by its assignment, and the exercise sources (the solutions) pass their own self-check cells, the graded
checks included. That the student notebooks are generated from the sources is tests/test_notebooks_exercises.py's
business; how blanks and planted mistakes are scored, tests/test_testing_grader.py's."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from minigpt.course.book import save_executed
from minigpt.testing.assignments import ASSIGNMENTS, load_assignment

nbformat = pytest.importorskip("nbformat", reason="install the dev extras: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="install the dev extras: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISES = ROOT / "notebooks" / "exercises"
SOLUTIONS = EXERCISES / "solutions"
ALL = [*NOTEBOOKS, *sorted(EXERCISES.glob("*.ipynb")), *sorted(SOLUTIONS.glob("*.ipynb"))]
LESSONS = list(ASSIGNMENTS)


def execute(nb, path: Path, monkeypatch, allow_errors: bool = False):
    # the kernel inherits the environment: make `import minigpt` work from notebooks/ without installing
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {f"{name}.ipynb" for name in TRAINING} <= names
    assert {
        "01_attention.ipynb",
        "03_gpt_forward_and_loss.ipynb",
        "04_backprop.ipynb",
        "05_jax_flax.ipynb",
        "06_training.ipynb",
        "07_decoding.ipynb",
    } <= names


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_notebooks_are_clean(path):
    """No outputs in git: outputs would go stale and could hold glyph boxes from a machine without the font."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before commit"


# Lessons that train for hundreds of steps compile at -O1 (``training_compile`` in tests/conftest.py: faster steps,
# slower compiles); the rest at the suite's cheap -O0. Measurements are in that fixture's docstring.
TRAINING = {
    "02_multi_head_attention",
    "06_training",
    "07_decoding",
    "08_ecommerce_applications",
    "09_transfer_learning",
}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)  # each its own unit of work (conftest.py)
def test_notebook_runs_top_to_bottom(path, monkeypatch, request):
    if path.stem in TRAINING:
        request.getfixturevalue("training_compile")
    nb = execute(nbformat.read(path, as_version=4), path, monkeypatch)
    save_executed(nb, path)  # for the book (minigpt book --executed DIR), when MINIGPT_BOOK_EXECUTED=DIR is set
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert outputs, "the notebook produced no output at all"
    texts = " ".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "Glyph" not in texts and "MissingGlyphsWarning" not in texts  # no tofu in the heat-maps


@pytest.mark.slow
@pytest.mark.parametrize("name", LESSONS)
def test_each_solution_runs_top_to_bottom_and_passes_its_self_checks(name, monkeypatch):
    path = SOLUTIONS / f"{name}.ipynb"
    nb = execute(nbformat.read(path, as_version=4), path, monkeypatch)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    functions = [t.function for t in load_assignment(name).tasks]
    for function in functions:
        assert f"{function}: correct" in printed


@pytest.mark.parametrize("name", LESSONS)
def test_each_lesson_has_an_exercise_notebook_named_after_it(name):
    assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), "exercises are named after their lesson"
    nb = nbformat.read(EXERCISES / f"{name}.ipynb", as_version=4)
    assert nb.metadata["minigpt"]["assignment"] == name
    assert 3 <= len(load_assignment(name).tasks) <= 6


def test_the_package_itself_has_no_blanks():
    # a blank is code that raises NotImplementedError; minigpt.course.markers writes such stubs, as text
    for path in (ROOT / "minigpt").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        raised = [n.exc for n in ast.walk(tree) if isinstance(n, ast.Raise) and n.exc is not None]
        names = [getattr(e.func if isinstance(e, ast.Call) else e, "id", "") for e in raised]
        assert "NotImplementedError" not in names, path

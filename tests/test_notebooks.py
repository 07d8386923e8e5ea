"""The tutorial notebooks run top to bottom (their asserts are the test), and the exercises work as intended:
solutions pass the checkers, blanks and classic mistakes fail with the message a student should see."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the dev extras: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="install the dev extras: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXERCISES = ROOT / "notebooks" / "exercises"
ALL = [*NOTEBOOKS, *sorted(EXERCISES.glob("*.ipynb"))]


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


def errors(cell) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
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


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    nb = execute(nbformat.read(path, as_version=4), path, monkeypatch)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert outputs, "the notebook produced no output at all"
    texts = " ".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "Glyph" not in texts and "MissingGlyphsWarning" not in texts  # no tofu in the heat-maps


def test_solutions_pass_every_checker(monkeypatch):
    path = EXERCISES / "solutions.ipynb"
    nb = execute(nbformat.read(path, as_version=4), path, monkeypatch)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    for name in (
        "softmax",
        "causal_mask",
        "attention",
        "multi_head_attention",
        "gpt_forward",
        "loss",
        "linear_backward",
        "layer_norm_backward",
    ):
        assert f"{name}: correct" in printed


def test_student_and_solution_notebooks_differ_only_in_the_exercise_cells():
    student = nbformat.read(EXERCISES / "exercises.ipynb", as_version=4)
    solution = nbformat.read(EXERCISES / "solutions.ipynb", as_version=4)
    assert len(student.cells) == len(solution.cells)
    n_exercises = 0
    for s, t in zip(student.cells[1:], solution.cells[1:], strict=True):
        if "exercise" in s.metadata.get("tags", []):
            n_exercises += 1
            assert 'raise NotImplementedError("TODO: ' in s.source and "NotImplementedError" not in t.source
        else:
            assert s.source == t.source
    assert n_exercises == 8


# what each blank (or planted mistake) must make the checker in the next cell say
BLANK = r"your function raised NotImplementedError: TODO: "
PLANTED = {
    "def softmax": (
        "def softmax(x):\n    e = np.exp(x - x.max(axis=0, keepdims=True))\n"
        "    return e / e.sum(axis=0, keepdims=True)",
        "softmax taken over the wrong axis",
    ),
    "def causal_mask": ("def causal_mask(T):\n    return np.triu(np.full((T, T), -1e4), k=1)", "attends to the future"),
    "def attention": (
        "def attention(q, k, v, mask):\n    s = q @ np.swapaxes(k, -1, -2)\n    s = s if mask is None else s + mask\n"
        "    e = np.exp(s - s.max(-1, keepdims=True))\n    return e / e.sum(-1, keepdims=True) @ v",
        r"not scaled by 1/√d_k",
    ),
    "def linear_backward": (  # the bias gradient not summed over time
        "def linear_backward(dy, x, weight, bias):\n"
        "    return dy @ weight.T, np.einsum('bti,bto->io', x, dy), dy.sum(0)",
        "summed over batch and time",
    ),
    "def layer_norm_backward": (  # μ treated as a constant
        "def layer_norm_backward(dy, x, weight, bias, eps):\n    xh = (x - x.mean(-1, keepdims=True)) / np.sqrt("
        "x.var(-1, keepdims=True) + eps)\n    g = dy * weight\n    dx = (g - xh * (g * xh).mean(-1, keepdims=True))"
        " / np.sqrt(x.var(-1, keepdims=True) + eps)\n    return dx, (dy * xh).sum((0, 1)), dy.sum((0, 1))",
        "forgot the mean term",
    ),
}


@pytest.mark.parametrize("planted", [False, True], ids=["blanks", "planted-mistakes"])
def test_blank_exercises_fail_with_the_intended_messages(planted, monkeypatch):
    path = EXERCISES / "exercises.ipynb"
    nb = copy.deepcopy(nbformat.read(path, as_version=4))
    expected = {}
    for i, cell in enumerate(nb.cells):
        if "exercise" not in cell.metadata.get("tags", []):
            continue
        for head, (source, message) in PLANTED.items():
            if planted and head in cell.source:
                cell.source = source
                expected[i + 1] = re.escape(message)
                break
        else:
            expected[i + 1] = re.escape(BLANK)
    if planted:  # the later forward exercises use the earlier functions: check only the planted ones
        expected = {i: m for i, m in expected.items() if m != re.escape(BLANK)}
    nb = execute(nb, path, monkeypatch, allow_errors=True)
    assert len(expected) == (5 if planted else 8)
    for i, message in expected.items():
        errs = errors(nb.cells[i])
        assert errs, f"cell {i} ({nb.cells[i].source.splitlines()[0]}) should have failed"
        assert errs[0]["ename"] == "AssertionError"
        assert re.search(message, errs[0]["evalue"]), errs[0]["evalue"]
    for i, cell in enumerate(nb.cells):  # nothing else fails: set-up and exercise cells only define things
        if i not in expected and not (planted and cell.source.startswith("check_")):
            assert not errors(cell), f"cell {i} failed unexpectedly: {errors(cell)}"


def test_the_package_itself_has_no_blanks():
    for path in (ROOT / "minigpt").rglob("*.py"):
        assert "NotImplementedError" not in path.read_text(encoding="utf-8"), path

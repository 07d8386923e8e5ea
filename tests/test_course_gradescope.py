"""``minigpt assign NAME --gradescope``: the zip unpacks into a Gradescope-like root, its wheel installs
offline, and ``run_autograder`` grades a submission with that wheel into a results.json that satisfies
Gradescope's schema (checked here with jsonschema)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest

from minigpt.cli import main as cli_main
from minigpt.course.assign import SOURCES
from minigpt.course.autograder import find_submission
from minigpt.course.markers import dumps

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
# https://gradescope-autograders.readthedocs.io/en/latest/specs/ — the fields minigpt writes, nothing else
SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["score", "tests"],
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "output", "visibility"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "score": {"type": "number", "minimum": 0},
                    "max_score": {"type": "number", "exclusiveMinimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "output": {"type": "string"},
                    "visibility": VISIBILITY,
                },
            },
        },
    },
}


def test_the_schema_rejects_what_gradescope_would():
    jsonschema.validate({"score": 0, "tests": []}, SCHEMA)
    for bad in (
        {"tests": []},
        {"score": -1, "tests": []},
        {"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "output": ""}]},
        {"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "output": "", "visibility": "students"}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A Gradescope-like root: the zip unpacked in ROOT/source, the wheel installed offline in ROOT/site."""
    out, root = tmp_path_factory.mktemp("out"), tmp_path_factory.mktemp("autograder")
    assert cli_main(["assign", "01_attention", "--gradescope", "--out", str(out)]) == 0
    assert (out / "01_attention" / "01_attention.ipynb").is_file()  # the student notebook beside the zip
    with zipfile.ZipFile(out / "01_attention" / "autograder.zip") as archive:
        archive.extractall(root / "source")
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
    for name in ("setup.sh", "run_autograder"):
        assert modes[name] & stat.S_IXUSR, f"{name} must be executable"
        (root / "source" / name).chmod(0o755)
    (wheel,) = (root / "source").glob("minigpt-*.whl")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(root / "site")]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True)
    return root


def autograde(root: Path, submission: dict | None) -> dict:
    sub = root / "submission"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir()
    if submission is not None:
        (sub / "01_attention.ipynb").write_text(dumps(submission), encoding="utf-8")
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "MINIGPT_PYTHON": sys.executable}
    env["PYTHONPATH"] = str(root / "site")  # minigpt from the package's wheel, not from this checkout
    where = subprocess.run([sys.executable, "-c", "import minigpt; print(minigpt.__file__)"], env=env, check=True,
                           capture_output=True, text=True, cwd=root).stdout  # fmt: skip
    assert where.startswith(str(root / "site"))
    subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, cwd=root, check=True, timeout=300)
    data = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(data, SCHEMA)
    return data


@pytest.mark.slow
def test_the_package_grades_a_submission_with_its_own_wheel(root):
    files = sorted(p.name for p in (root / "source").iterdir())
    assert files == sorted(
        ["01_attention.ipynb", "README.md", "assignment.json", "requirements.txt", "run_autograder", "setup.sh"]
        + [p.name for p in (root / "source").glob("minigpt-*.whl")]
    )
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(root / "source" / script)], check=True)
    pins = dict(line.split("==") for line in (root / "source" / "requirements.txt").read_text().split())
    for name in ("jax", "numpy", "hypothesis", "flax"):
        assert pins[name] == metadata.version(name)

    nb = json.loads((SOURCES / "01_attention.ipynb").read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith("def softmax("))
    cell["source"] = (
        "def softmax(x):\n    e = np.exp(x - x.max(axis=0, keepdims=True))\n    return e / e.sum(axis=0, keepdims=True)"
    )
    (root / "submission_metadata.json").write_text(json.dumps({"users": [{"id": 4242, "email": "s@example.org"}]}))
    data = autograde(root, nb)
    declared = json.loads((root / "source" / "assignment.json").read_text())
    assert len(data["tests"]) == sum(len(t["checks"]) for t in declared["tasks"])
    assert sum(t["max_score"] for t in data["tests"]) == declared["max_points"] == 10
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"])) and 0 < data["score"] < 10
    softmax = [t for t in data["tests"] if t["name"].startswith("softmax:")]
    assert all(t["score"] == 0 for t in softmax) and any("wrong axis" in t["output"] for t in softmax)
    assert {t["visibility"] for t in data["tests"]} == {"visible", "hidden"}


@pytest.mark.slow
def test_no_notebook_scores_zero_with_one_line_saying_what_to_upload(root):
    data = autograde(root, None)
    assert data["score"] == 0 and data["tests"] == []
    assert data["output"] == "no .ipynb or .py file was submitted; upload your 01_attention.ipynb"


def test_the_submission_is_the_one_notebook_or_the_one_named_after_the_assignment(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "helper.py").write_text("")
    assert find_submission(tmp_path, "09_transfer_learning") == tmp_path / "helper.py"
    (tmp_path / "09_lora.ipynb").write_text("{}")
    assert find_submission(tmp_path, "09_transfer_learning") == tmp_path / "09_lora.ipynb"  # the old name too
    (tmp_path / "scratch.ipynb").write_text("{}")
    assert find_submission(tmp_path, "09_transfer_learning") == tmp_path / "09_lora.ipynb"
    (tmp_path / "09_transfer_learning.ipynb").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"^submit one notebook, not 3 \(09_lora.ipynb, 09_transfer_lea"):
        find_submission(tmp_path, "09_transfer_learning")

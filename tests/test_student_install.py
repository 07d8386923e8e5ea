"""A student's install: a fresh virtualenv with only ``pip install -e .`` must import everything the notebooks
import, ``minigpt.testing.checkers`` included (it needs hypothesis, so hypothesis is a runtime dependency)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))


def notebook_imports(path: Path) -> set[tuple[str, str]]:
    """(module, name) for every import in the notebook's code cells; name "" for a plain ``import module``."""
    found = set()
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found |= {(alias.name, "") for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found |= {(node.module, alias.name) for alias in node.names}
    return found


def test_notebook_imports_are_found():
    imports = set().union(*(notebook_imports(p) for p in NOTEBOOKS))
    assert ("minigpt.testing.checkers", "check_attention") in imports  # lesson 01's self-check
    assert {m for m, _ in imports} >= {"numpy", "jax", "minigpt.testing.checks.decoding"}


CHECK = """
import importlib, json, sys
missing = []
for module, name in json.loads(sys.argv[1]):
    try:
        mod = importlib.import_module(module)
        if name and not hasattr(mod, name):
            importlib.import_module(f"{module}.{name}")
    except Exception as e:
        missing.append(f"{module} {name}: {type(e).__name__}: {e}")
from minigpt.testing.checkers import check_softmax
from minigpt.reference import softmax
check_softmax(softmax, max_examples=3)
print(json.dumps(missing))
"""


@pytest.mark.slow
def test_a_fresh_pip_install_imports_everything_the_notebooks_import(tmp_path):
    source = tmp_path / "src"  # a copy, so the install writes nothing into the working tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "minigpt", source / "minigpt", ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    # no pip of its own (installing one takes 7 s): this pip installs into it through --python, resolving against
    # the new environment exactly as its own pip would
    venv.create(env_dir, with_pip=False)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check"]
    # --no-compile: the .pyc of every file of jax and its dependencies are time this check does not need
    install = subprocess.run([*pip, "--no-compile", "-e", str(source)], capture_output=True, text=True, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    imports = sorted(set().union(*(notebook_imports(p) for p in NOTEBOOKS)))
    run = subprocess.run(
        [str(python), "-c", CHECK, json.dumps(imports)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
    grade_help = subprocess.run(
        [str(python), "-m", "minigpt.cli", "grade", "--help"], capture_output=True, text=True, env=env
    )
    assert grade_help.returncode == 0 and "--student-id" in grade_help.stdout
    assert sys.executable != str(python)  # the check ran in the new environment, not this one

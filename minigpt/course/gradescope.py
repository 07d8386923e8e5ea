"""``package(NAME, DIR)`` → ``DIR/NAME/autograder.zip`` for Gradescope, with the student notebook beside it.

The zip holds what Gradescope's Ubuntu image needs and nothing from the network but PyPI:

- ``setup.sh`` — run once when the image is built: a virtualenv with the pinned ``requirements.txt`` (every
  package this minigpt needs, at the versions installed where the package was made) and the minigpt wheel;
- ``minigpt-*.whl`` — this very minigpt, built from the working tree, so the graded checks are the ones verified;
- ``run_autograder`` — run per submission: ``minigpt grade`` on ``$AUTOGRADER_ROOT/submission/*`` (default root
  ``/autograder``) into ``results/results.json`` (``minigpt.course.autograder``);
- ``NAME.ipynb`` (the student notebook), ``assignment.json`` (tasks and points) and ``README.md`` for the instructor.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import minigpt
from minigpt.course.assign import REPO, AssignError, Released, assign, find_source
from minigpt.testing.assignments import load_assignment

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (the zip is unpacked in
# /autograder/source). It installs the pinned dependencies and this exact minigpt into their own virtualenv.
set -euo pipefail
cd "$(dirname "$0")"
ROOT="${AUTOGRADER_ROOT:-/autograder}"
if ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update && apt-get install -y python3-venv
fi
python3 -m venv "$ROOT/minigpt-venv"
"$ROOT/minigpt-venv/bin/python" -m pip install --no-cache-dir --upgrade pip
"$ROOT/minigpt-venv/bin/python" -m pip install --no-cache-dir -r requirements.txt
"$ROOT/minigpt-venv/bin/python" -m pip install --no-cache-dir --no-deps ./{wheel}
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: minigpt grade on $ROOT/submission/* → $ROOT/results/results.json.
# AUTOGRADER_ROOT moves the root (to try the package locally); MINIGPT_PYTHON picks the interpreter.
set -uo pipefail
ROOT="${{AUTOGRADER_ROOT:-/autograder}}"
PY="${{MINIGPT_PYTHON:-}}"
if [ -z "$PY" ]; then
    if [ -x "$ROOT/minigpt-venv/bin/python" ]; then PY="$ROOT/minigpt-venv/bin/python"; else PY=python3; fi
fi
export MPLBACKEND=Agg
exec "$PY" -m minigpt.course.autograder --root "$ROOT" --assignment {name} --timeout {timeout:g}
"""

README = """# Autograder for `{name}` (minigpt {version})

Made by `minigpt assign {name} --gradescope`. Upload `autograder.zip` as a Gradescope "Programming Assignment"
and hand out `{name}.ipynb` to your students; they upload their filled-in `{name}.ipynb`. The pins were made
with Python {python}: choose a base image whose `python3` is that version or newer (Ubuntu 24.04 has 3.12).

- `setup.sh` builds a virtualenv in `/autograder/minigpt-venv` from `requirements.txt` (every dependency pinned
  to the version it was verified with) and installs `{wheel}`, the exact minigpt whose checks were run
  against the solution (full marks) and the blank notebook (0) before this package was written.
- `run_autograder` grades the one notebook in `/autograder/submission/` with `minigpt grade` and writes
  `/autograder/results/results.json`: one test per check, {points:g} points in all; hidden checks are
  Gradescope-hidden until you publish. Each student's inputs are seeded by their Gradescope user id.
- `assignment.json` lists the tasks and checks with their points.

Try it before uploading (Python with this minigpt installed on your PATH):

    mkdir -p /tmp/ag/submission && cp my_{name}.ipynb /tmp/ag/submission/
    AUTOGRADER_ROOT=/tmp/ag bash run_autograder && cat /tmp/ag/results/results.json

Give the autograder 2 GB of memory or more; grading takes about a minute at most.
"""


def pinned_requirements(dist: str = "minigpt") -> list[str]:
    """``name==version`` for every package ``dist`` needs, transitively (no extras), as installed here."""
    pins: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(dist, frozenset())]
    done: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            found = metadata.distribution(name)
        except metadata.PackageNotFoundError as e:
            raise AssignError(f"{name} is needed by {dist} but not installed; pip install -e . first") from e
        if name != dist:
            pins[canonicalize_name(found.metadata["Name"])] = found.version
        for line in found.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def build_wheel(dest: Path) -> Path:
    """A wheel of the minigpt being run, built from a copy of its tree (the repository is not written to)."""
    with tempfile.TemporaryDirectory(prefix="minigpt-wheel-") as tmp:
        tree = Path(tmp) / "src"
        tree.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, tree / name)
        shutil.copytree(Path(minigpt.__file__).parent, tree / "minigpt", ignore=shutil.ignore_patterns("__pycache__"))
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dest)]
        proc = subprocess.run([*command, str(tree)], capture_output=True, text=True, check=False)
        wheels = sorted(dest.glob("minigpt-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no wheel was written"]
            raise AssignError(f"could not build the minigpt wheel ({last[0]}); pip install setuptools wheel")
    return wheels[-1]


def _add(archive: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    archive.writestr(info, data)


def package(
    source: str | Path, out_dir: str | Path, *, assignment: str | None = None, check: bool = True, timeout: float = 60.0
) -> tuple[Released, Path]:
    """Write ``out_dir/NAME/NAME.ipynb`` (verified as ``assign`` does) and ``out_dir/NAME/autograder.zip``."""
    path = find_source(source)
    folder = Path(out_dir) / path.stem
    released = assign(path, folder, assignment=assignment, check=check, timeout=timeout)
    declared = load_assignment(released.assignment)
    summary = {
        "assignment": released.assignment,
        "minigpt": minigpt.__version__,
        "python": platform.python_version(),  # the requirements were pinned under this interpreter
        "max_points": declared.max_points,
        "tasks": [
            {
                "function": t.function,
                "checks": [{"name": c.name, "points": c.points, "hidden": c.hidden} for c in t.checks],
            }
            for t in declared.tasks
        ],
    }
    zip_path = folder / "autograder.zip"
    with tempfile.TemporaryDirectory(prefix="minigpt-gradescope-") as tmp:
        wheel = build_wheel(Path(tmp))
        with zipfile.ZipFile(zip_path, "w") as archive:
            _add(archive, "setup.sh", SETUP_SH.replace("{wheel}", wheel.name).encode(), executable=True)
            run = RUN_AUTOGRADER.format(name=released.assignment, timeout=timeout)
            _add(archive, "run_autograder", run.encode(), executable=True)
            _add(archive, "requirements.txt", ("\n".join(pinned_requirements()) + "\n").encode())
            _add(archive, wheel.name, wheel.read_bytes())
            _add(archive, released.notebook.name, released.notebook.read_bytes())
            _add(archive, "assignment.json", (json.dumps(summary, ensure_ascii=False, indent=1) + "\n").encode())
            readme = README.format(
                name=released.assignment,
                version=summary["minigpt"],
                wheel=wheel.name,
                points=declared.max_points,
                python=summary["python"],
            )
            _add(archive, "README.md", readme.encode())
    return released, zip_path

"""Every exercise has one source (``notebooks/exercises/solutions/NN_topic.ipynb``, with solution and hidden-test
markers), named after its lesson and graded by ``ASSIGNMENTS``, and the committed student notebook is exactly what
``minigpt assign`` generates from it. (That each solution scores full marks and each stub 0 is
tests/test_testing_grader.py's business; that each source runs top to bottom, tests/test_notebooks.py's.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minigpt.course.assign import EXERCISES, SOURCES, find_source
from minigpt.course.markers import BEGIN_HIDDEN, BEGIN_SOLUTION, dumps, student_notebook
from minigpt.testing.assignments import ALIASES, ASSIGNMENTS, load_assignment

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(p.stem for p in SOURCES.glob("*.ipynb"))


def test_every_exercise_is_graded_and_named_after_its_lesson():
    assert NAMES == sorted(ASSIGNMENTS) and len(NAMES) >= 10
    lessons = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert set(NAMES) <= lessons, "an exercise is named after the lesson it builds on"
    assert sorted(p.stem for p in EXERCISES.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("old, new", sorted(ALIASES.items()))
def test_the_old_exercise_names_still_grade(old, new):
    assert load_assignment(old) is load_assignment(new)
    assert find_source(old) == SOURCES / f"{new}.ipynb"


@pytest.mark.parametrize("name", NAMES)
def test_the_student_notebook_is_what_minigpt_assign_generates(name):
    source = json.loads((SOURCES / f"{name}.ipynb").read_text(encoding="utf-8"))
    committed = (EXERCISES / f"{name}.ipynb").read_text(encoding="utf-8")
    regenerated = dumps(student_notebook(source, SOURCES, EXERCISES, name))
    assert committed == regenerated, f"run: minigpt assign {name} --out notebooks/exercises"


@pytest.mark.parametrize("name", NAMES)
def test_each_graded_function_is_one_solution_region_followed_by_its_self_check(name):
    source = json.loads((SOURCES / f"{name}.ipynb").read_text(encoding="utf-8"))
    assert source["metadata"]["minigpt"]["assignment"] == name
    cells = source["cells"]
    functions = []
    for i, cell in enumerate(cells):
        text = "".join(cell["source"])
        if "exercise" in cell["metadata"].get("tags", []):
            assert text.count(BEGIN_SOLUTION) == 1, text
            functions.append(text.split("(")[0].removeprefix("def "))
            check = "".join(cells[i + 1]["source"])
            assert "check" in cells[i + 1]["metadata"].get("tags", [])
            # the hidden part runs every graded check, hidden ones included, when the source is executed
            assert f'{BEGIN_HIDDEN}\ncheck_graded("{name}", {functions[-1]})' in check
        else:
            assert BEGIN_SOLUTION not in text
    assert functions == [t.function for t in load_assignment(name).tasks]

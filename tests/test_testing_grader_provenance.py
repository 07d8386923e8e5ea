"""Whose work is a graded function: the static and the dynamic look each catch what the other might miss."""

import numpy as np
import pytest

from minigpt.testing.checkers import check_softmax
from minigpt.testing.context import grading
from minigpt.testing.grader import provenance
from minigpt.testing.grader.runner import grade
from minigpt.testing.grader.submission import load_units
from minigpt.testing.grader.timelimit import TimeLimitExceeded, time_limit


def submitted(source: str) -> dict:
    """Run source as the grader would: compiled under a submission filename, in a fresh namespace."""
    namespace: dict = {"__name__": "__main__"}
    exec(compile(source, "<submission test>", "exec"), namespace)
    return namespace


OWN = (
    "import numpy as np\ndef softmax(x):\n    e = np.exp(x - x.max(-1, keepdims=True))\n"
    "    return e / e.sum(-1, keepdims=True)\n"
)


@pytest.mark.parametrize(
    "source",
    [
        "from minigpt import reference as ref\ndef softmax(x):\n    return ref.softmax(x)",
        "import minigpt.reference\ndef softmax(x):\n    return minigpt.reference.softmax(x)",
        "from minigpt.reference.functional import softmax as s\ndef softmax(x):\n    return s(x)",
        "from minigpt.reference import softmax as s\ndef helper(x):\n    return s(x)\n"
        "def softmax(x):\n    return helper(x)",
        "from minigpt import GPT\ndef softmax(x):\n    return GPT",
        "def softmax(x, f=__import__('minigpt.reference').reference.softmax):\n    return f(x)",
    ],
)
def test_static_look_finds_reference_names(source):
    assert provenance.static_uses(submitted(source)["softmax"])


def test_own_numpy_code_and_plumbing_are_not_flagged():
    ns = submitted(
        OWN + "from minigpt.config import GPTConfig\ndef uses_config(x):\n    return GPTConfig, softmax(x)\n"
    )
    assert provenance.static_uses(ns["softmax"]) == [] and provenance.static_uses(ns["uses_config"]) == []
    assert provenance.not_own_code("softmax", ns["softmax"]) is None


def test_a_reference_function_under_the_students_name_is_not_their_code():
    ns = submitted("from minigpt.reference import softmax\n")
    assert "minigpt.reference.functional.softmax" in provenance.not_own_code("softmax", ns["softmax"])
    assert "must be a function" in provenance.not_own_code("softmax", np.exp)


def test_the_dynamic_look_catches_a_name_built_at_run_time():
    ns = submitted(
        "import importlib\ndef softmax(x):\n    return importlib.import_module('minigpt.refer' + 'ence').softmax(x)\n"
    )
    assert provenance.static_uses(ns["softmax"]) == []  # nothing to see in the code's names
    with provenance.watch_calls() as calls:
        ns["softmax"](np.zeros((2, 3)))
    assert "minigpt.reference.functional.softmax" in calls
    with provenance.watch_calls() as calls:
        submitted(OWN)["softmax"](np.zeros((2, 3)))
    assert calls == []


HW = """
import numpy as np
from minigpt.testing.checkers import check_softmax
from minigpt.testing.grader.grading import Assignment

def own_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

hw = Assignment("t")
hw.task("softmax", reference=own_softmax).check("ok", 1, lambda f: check_softmax(f, 5))
hw.task("double").check("ok", 1, lambda f: None if np.allclose(f(np.ones((1, 3))), 2 / 3) else 0.0)
"""


def test_grade_task_scores_a_reference_call_zero_and_a_stand_in_call_full(tmp_path):
    (tmp_path / "hw.py").write_text(HW, encoding="utf-8")
    spec = f"{tmp_path / 'hw.py'}:hw"
    (tmp_path / "a.py").write_text("def double(x):\n    return 2 * softmax(x)\n", encoding="utf-8")
    report = grade(tmp_path / "a.py", assignment=spec, timeout=20)
    assert report.task_scores()["double"] == (1.0, 1.0)  # softmax is missing, and the reference stands in for it
    (tmp_path / "b.py").write_text(
        "import importlib\ndef softmax(x):\n    return importlib.import_module('minigpt' + '.reference').softmax(x)\n",
        encoding="utf-8",
    )
    result = grade(tmp_path / "b.py", assignment=spec, timeout=20).checks[0]
    assert result.score == 0 and "called minigpt.reference.functional.softmax" in result.output


def test_grading_seeds_by_id_and_hides_the_expected_value():
    seen = {}

    def recorder(name):
        def softmax(x):
            seen.setdefault(name, x.copy())
            return x  # wrong: fails on the first example

        return softmax

    for name, seed in (("a", 1), ("a2", 1), ("b", 2)):
        with grading(seed), pytest.raises(AssertionError) as e:
            check_softmax(recorder(name), max_examples=3)
        assert "expected" not in str(e.value) or "expected shape" in str(e.value)
    assert np.array_equal(seen["a"], seen["a2"]) and not np.array_equal(seen["a"], seen["b"])
    with pytest.raises(AssertionError, match="expected"):  # at the desk the expected value is shown
        check_softmax(lambda x: x * 1.0 + 1e-3 * (x.ndim > 0), max_examples=3)


def test_time_limit_interrupts_and_cannot_be_swallowed():
    with pytest.raises(TimeLimitExceeded):
        with time_limit(0.2):
            try:
                while True:
                    pass
            except Exception:  # a student's broad except must not stop the limit
                pass


def test_script_units_keep_decorators_and_skip_self_checks(tmp_path):
    path = tmp_path / "s.py"
    path.write_text("import functools\n\n@functools.lru_cache\ndef f(x):\n    return x\n\ncheck_softmax(f)\nprint(1)\n")
    units = load_units(path)
    assert [u.label for u in units] == ["line 1", "line 3", "line 8"]
    assert "@functools.lru_cache" in units[1].source and units[1].defines == {"f"}

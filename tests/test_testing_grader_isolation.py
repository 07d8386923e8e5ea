"""Grading that the student's code cannot reach: every cheat the issue (#31) tried against exercise 01 scores below
full marks with a one-line reason, the worker's memory and output are bounded, a garbled answer is a zero, and
nothing the submission started outlives grading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minigpt.testing.grader.runner import grade

ROOT = Path(__file__).resolve().parents[1]
HONEST = """
import math

import numpy as np


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_mask(T):
    return np.triu(np.full((T, T), -np.inf), k=1)

"""
FULL = 10.0  # 01_attention's points, hidden checks included


def submit(tmp_path: Path, attention: str, prelude: str = "") -> Path:
    """Exercise 01 with an honest softmax and causal mask, ``prelude`` run first, and ``attention`` as given."""
    path = tmp_path / "01_attention_cheat.py"
    path.write_text(HONEST + textwrap.dedent(prelude) + "\n\n" + textwrap.dedent(attention), encoding="utf-8")
    return path


def attention_result(report) -> tuple[float, str]:
    checks = [c for c in report.checks if c.task == "attention"]
    return sum(c.score for c in checks), checks[0].output


def assert_caught(report, *words: str) -> None:
    got, why = attention_result(report)
    assert report.score < FULL and got == 0, (report.score, why)
    first = why.splitlines()[0]
    assert all(w in first for w in words), why


def test_the_reference_through_evald_code_scores_zero(tmp_path):
    report = grade(
        submit(
            tmp_path,
            """
            def attention(q, k, v, mask):
                f = eval("__import__('minigpt' + '.reference.functional', fromlist=['x'])")
                return f.scaled_dot_product_attention(q, k, v, mask)
            """,
        ),
        timeout=30,
    )
    assert_caught(report, "called minigpt.reference.functional.scaled_dot_product_attention")


@pytest.mark.parametrize("pool", [False, True], ids=["thread", "pool"])
def test_the_reference_called_from_a_worker_thread_scores_zero(tmp_path, pool):
    body = (
        "with concurrent.futures.ThreadPoolExecutor(2) as ex:\n        return ex.submit(REF, q, k, v, mask).result()"
        if pool
        else "out = {}\n    t = threading.Thread(target=lambda: out.update(r=REF(q, k, v, mask)))\n"
        "    t.start()\n    t.join()\n    return out['r']"
    )
    prelude = """
    import concurrent.futures
    import importlib
    import threading

    NAME = "minigpt" + ".reference.functional"  # looked up only inside the thread: nothing for a static look


    def REF(*args):
        return getattr(importlib.import_module(NAME), "scaled_dot_product_attention")(*args)
    """
    report = grade(submit(tmp_path, f"def attention(q, k, v, mask):\n    {body}\n", prelude), timeout=30)
    assert_caught(report, "called minigpt.reference.functional.scaled_dot_product_attention")


# wrong, and looks at the future: fails every attention check
WRONG = (
    "def attention(q, k, v, mask):\n"
    "    return np.broadcast_to(v.mean(1, keepdims=True), q.shape[:2] + v.shape[2:]) * 1\n"
)


def test_a_monkeypatched_runner_and_grading_change_nothing(tmp_path):
    prelude = """
    import minigpt.testing.grader.grading as grading
    import minigpt.testing.grader.runner as runner
    from minigpt.testing.moved import grading as old_grading

    def full_marks(assignment, task, *args, **kwargs):
        return [grading.CheckResult(task.name, c.name, c.points, c.points, "passed") for c in task.checks]

    grading.grade_task = old_grading.grade_task = runner.grade_task = full_marks
    grading._run_check = lambda *a, **k: None
    """
    assert_caught(grade(submit(tmp_path, WRONG, prelude), timeout=30), "attention")


def test_checkers_patched_to_pass_change_nothing(tmp_path):
    prelude = """
    import minigpt.testing.checkers as checkers
    import minigpt.testing.checks.attention as attention_checks
    import minigpt.testing.checks.diagnosis as diagnosis

    diagnosis.run = lambda *a, **k: None
    diagnosis.compare = lambda *a, **k: None
    attention_checks.run = diagnosis.run
    checkers.check_attention = attention_checks.check_attention = lambda *a, **k: None
    """
    assert_caught(grade(submit(tmp_path, WRONG, prelude), timeout=30), "attention: your output differs")


def test_provenance_switched_off_and_the_reference_imported_plainly_scores_zero(tmp_path):
    prelude = """
    import contextlib

    import minigpt.testing.grader.provenance as provenance
    from minigpt.reference.functional import scaled_dot_product_attention as sdpa

    provenance.static_uses = lambda *a, **k: []
    provenance.not_own_code = lambda *a, **k: None
    provenance.watch_calls = lambda *a, **k: contextlib.nullcontext(provenance.Calls())
    """
    report = grade(submit(tmp_path, "def attention(q, k, v, mask):\n    return sdpa(q, k, v, mask)\n", prelude))
    assert_caught(report, "`attention` uses `sdpa` (minigpt.reference)")


def test_a_forged_results_file_then_exit_scores_zero(tmp_path):
    forged = {"kind": "check", "task": "attention", "check": "matches the reference", "score": 3.0, "max_score": 3.0}
    prelude = f"""
    import os
    import sys

    for arg in sys.argv[1:] + ["results.jsonl"]:
        try:
            with open(arg, "a") as f:
                f.write({json.dumps(json.dumps(forged))} + "\\n" + '{{"kind": "done"}}' + "\\n")
        except OSError:
            pass
    os._exit(0)
    """
    report = grade(submit(tmp_path, WRONG, prelude), timeout=30)
    assert report.score == 0 and "exited with code 0" in report.error.splitlines()[0]
    assert all(c.status == "not-run" for c in report.checks if c.task == "attention")


def test_a_garbled_answer_on_the_grader_pipe_is_a_zero_never_full_marks(tmp_path):
    prelude = """
    import os

    for fd in range(3, 64):
        try:
            os.write(fd, b"\\xff" * 16)
        except OSError:
            pass
    """
    report = grade(submit(tmp_path, "def attention(q, k, v, mask):\n    return q\n", prelude), timeout=30)
    assert report.score == 0 and "unreadable" in report.error.splitlines()[0]


def test_a_stray_message_on_the_grader_pipe_is_ignored(tmp_path):
    # a well-formed message that is not the answer to the grader's question changes nothing
    prelude = """
    import json
    import os

    body = json.dumps({"re": 99, "value": 1, "calls": [], "intact": True}).encode()
    for fd in range(3, 64):
        try:
            os.write(fd, len(body).to_bytes(8, "big") + body)
        except OSError:
            pass
    """
    report = grade(submit(tmp_path, WRONG, prelude), timeout=30)
    assert attention_result(report)[0] == 0 and report.task_scores()["softmax"] == (4.0, 4.0)


DETACHED = """
import os
import subprocess
import sys
import time

script = "import sys, time; time.sleep(4); open(sys.argv[1], 'w').write('{{\\"score\\": 10, \\"tests\\": []}}')"
if os.fork() == 0:  # a double fork into a new session with an empty environment: no group, no token
    os.setsid()
    subprocess.Popen([sys.executable, "-c", script, {target!r}], env={{}}, start_new_session=True)
    os._exit(0)
time.sleep(0.5)
"""


def test_a_detached_child_cannot_rewrite_results_json_after_the_grader_exits(tmp_path):
    out = tmp_path / "out"
    target = out / "results.json"
    path = submit(tmp_path, WRONG, DETACHED.format(target=str(target)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "minigpt.cli", "grade", str(path), "--assignment", "01_attention"]
    subprocess.run([*command, "--format", "gradescope", "--out", str(out)], env=env, check=True, timeout=120)
    first = json.loads(target.read_text(encoding="utf-8"))
    time.sleep(6)  # past the moment the child would have rewritten the file
    assert json.loads(target.read_text(encoding="utf-8")) == first
    assert first["score"] < FULL


def test_the_worker_memory_is_capped(tmp_path):
    prelude = "hog = bytearray(3 * 2**30)\n"
    report = grade(submit(tmp_path, WRONG, prelude), timeout=30, memory_mb=2048)
    assert any(u.status == "error" and "MemoryError" in u.message for u in report.units)
    assert report.task_scores()["softmax"] == (4.0, 4.0)  # the rest is graded


def test_the_worker_output_is_bounded(tmp_path):
    prelude = "import os\nimport sys\nfor _ in range(200):\n    print('x' * 100_000)\nsys.stdout.flush()\nos._exit(1)\n"
    report = grade(submit(tmp_path, WRONG, prelude), timeout=60)
    assert "exited with code 1" in report.error and len(report.error) < 2000


# -- diagnoses that say what happened -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"cells": 5}', '"cells" is a int'),
        ('{"cells": [5]}', "cell 0 is a int"),
        ('{"cells": [{"cell_type": "code", "source": 5}]}', "source of cell 0"),
        ('{"cells": [{"cell_type": "code", "source": "", "metadata": {"tags": 3}}]}', "metadata of cell 0"),
        ('{"cells": [], "metadata": 7}', None),  # no cells, odd metadata: graded (0 points), not a traceback
    ],
)
def test_a_malformed_notebook_is_one_line(text, why, tmp_path, capsys):
    from minigpt.cli import main as cli_main

    path = tmp_path / "01_attention.ipynb"
    path.write_text(text, encoding="utf-8")
    code = cli_main(["grade", str(path), "--timeout", "20"])
    captured = capsys.readouterr()
    if why is None:
        assert code == 0 and "Score: 0 / 8" in captured.out
        return
    err = captured.err.strip()
    assert code == 2 and why in err and "\n" not in err and "Traceback" not in err


def test_a_missing_or_only_raising_task_says_so_and_never_names_the_stand_in(tmp_path):
    path = tmp_path / "01_attention_partial.py"
    path.write_text(
        "import numpy as np\n\n\ndef softmax(x):\n    e = np.exp(x - x.max(-1, keepdims=True))\n"
        "    return e / e.sum(-1, keepdims=True)\n\n\ndef causal_mask(T):\n    raise ValueError('not yet')\n",
        encoding="utf-8",
    )
    report = grade(path, timeout=20)
    out = {c.task: c.output for c in report.checks}
    assert "does not define `attention`" in out["attention"]
    assert "your function raised ValueError: not yet" in out["causal_mask"]
    assert not any("stand_in" in o for o in out.values())
    nb = {
        "cells": [
            {"cell_type": "code", "source": "import numpy as np\n", "metadata": {}},
            {"cell_type": "code", "source": "raise RuntimeError('x')\ndef attention(q, k, v, mask):\n    return q\n"},
            {"cell_type": "code", "source": "def softmax(x):\n    return x\n1 / 0\n", "metadata": {}},
        ]
    }
    path = tmp_path / "01_attention.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    report = grade(path, timeout=20)
    out = {c.task: c.output for c in report.checks}
    assert "does not define `causal_mask`" in out["causal_mask"]
    assert "`attention` is not defined: the cell 1 that defines it raised RuntimeError: x" in out["attention"]
    assert not any("stand_in" in o for o in out.values()), out


def test_a_submission_that_closes_the_grader_pipes_still_gets_a_report(tmp_path):
    prelude = "import os\n\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass"
    report = grade(submit(tmp_path, "def attention(q, k, v, mask):\n    return q\n", prelude), timeout=20)
    assert report.score == 0 and report.error and all(c.status == "not-run" for c in report.checks)

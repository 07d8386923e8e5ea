"""minigpt.course.selfcheck.check_graded: passes a right function, names the graded check a wrong one fails —
hidden checks included — and refuses a function the assignment does not grade."""

from __future__ import annotations

import numpy as np
import pytest

from minigpt.course.selfcheck import check_graded


def repeat_kv(x, n_rep):
    return np.repeat(x, n_rep, axis=1)


def test_a_right_function_passes_every_graded_check():
    check_graded("10_gpt2_to_llama", repeat_kv)
    check_graded("10_llama", repeat_kv)  # the old name too


def test_a_wrong_function_is_told_which_graded_check_failed():
    def repeat_kv(x, n_rep):  # noqa: F811 - the student's wrong version, under the graded name
        return np.tile(x, (1, n_rep, 1, 1))

    with pytest.raises(
        AssertionError, match=r"^repeat_kv: the graded check 'each kv head repeated n_rep .*wrong order"
    ):
        check_graded("10_gpt2_to_llama", repeat_kv)


def test_hidden_checks_run_too(tmp_path):
    (tmp_path / "hw.py").write_text(
        "from minigpt.testing.grader.grading import Assignment\n\n"
        "def never(f):\n    raise AssertionError('the hidden one')\n\n"
        "hw = Assignment('hw')\n"
        "hw.task('double').check('visible', 1, lambda f: f(2) == 4).check('secret', 1, never, hidden=True)\n",
        encoding="utf-8",
    )

    def double(x):
        return 2 * x

    with pytest.raises(AssertionError, match="^double: the graded hidden check 'secret' failed: the hidden one"):
        check_graded(f"{tmp_path / 'hw.py'}:hw", double)


def test_a_function_the_assignment_does_not_grade_is_refused():
    def softmax(x):
        return x

    with pytest.raises(ValueError, match="10_gpt2_to_llama grades no function named 'softmax'; pass one of: rms_norm"):
        check_graded("10_gpt2_to_llama", softmax)

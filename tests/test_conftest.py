"""The suite's own set-up (tests/conftest.py): how xdist splits the work, and the compile settings."""

from __future__ import annotations

import os

from conftest import _CHEAP_COMPILE, _SPLIT_BY_CASE, _TRAINING_COMPILE, unit_of_work


def test_a_file_is_one_unit_of_work_and_each_notebook_case_its_own():
    scope = unit_of_work
    assert scope("tests/test_runs.py::test_lock[a]") == scope("tests/test_runs.py::test_other") == "tests/test_runs.py"
    assert scope("tests/test_optim.py::test_x") != scope("tests/test_runs.py::test_x")
    for path in _SPLIT_BY_CASE:
        a, b = f"{path}::test_run[01_attention.ipynb]", f"{path}::test_run[02_multi_head_attention.ipynb]"
        assert scope(a) == a and scope(b) == b


def test_units_of_work_are_handed_out_in_collection_order(request):
    """xdist's default reorders files by their number of tests, which defeats conftest's slow-first sort."""
    assert request.config.getoption("loadscopereorder") is False


def test_the_suite_compiles_cheaply_unless_told_not_to():
    if os.environ.get("MINIGPT_TEST_FULL_OPT") == "1":
        assert _CHEAP_COMPILE not in os.environ.get("XLA_FLAGS", "")
    else:
        assert _CHEAP_COMPILE in os.environ["XLA_FLAGS"]
        assert os.environ["JAX_COMPILATION_CACHE_DIR"]


def test_training_compile_swaps_the_cheap_flags_for_the_o1_ones(training_compile):
    flags = os.environ.get("XLA_FLAGS", "")
    assert _CHEAP_COMPILE not in flags
    if os.environ.get("MINIGPT_TEST_FULL_OPT") != "1":
        assert flags.count(_TRAINING_COMPILE) == 1 and "xla_backend_optimization_level=0" not in flags

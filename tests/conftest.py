"""Shared test set-up: cheap XLA compiles, malloc settings, hypothesis profiles and float64 helpers.

Profiles: ``ci`` (default under CI=true) is derandomized, so a red run is reproducible;
``dev`` explores new examples each run. Select with HYPOTHESIS_PROFILE=ci|dev.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from minigpt.training.hostmem import glibc_tunables

_CHEAP_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
# For notebooks that train for hundreds of steps: LLVM at -O1 makes code about as fast as the default -O3's and
# compiles in between (see ``training_compile``).
_TRAINING_COMPILE = "--xla_backend_optimization_level=1 --xla_cpu_use_fusion_emitters=false"


def _compile_for_tests() -> None:
    """Make XLA compile cheaply, for this process and every subprocess and notebook kernel it starts.

    Why: most of the suite's CPU time is XLA:CPU compiling tiny models, not running them (the xdist workers
    compile about 3,500 programs a run). Two flags: LLVM at -O0, and XLA:CPU's older element-wise emitters instead
    of its MLIR fusion emitters, whose pass pipeline is rebuilt for every program. Compiling the loss and gradients
    of 8 small GPTs took 19.6 s at the defaults, 8.4 s at -O0 and 5.1 s with both flags (38 tiny programs: 10.3,
    7.5 and 4.4 s). The code they make runs slower (150 train steps: 5 s, 8 s, 11 s), which is why lessons that
    train for long compile at -O1 (``training_compile``). A persistent compilation cache shared by the xdist
    workers, the CLI subprocesses and the notebook kernels compiles each distinct program once per run instead of
    once per process (and once ever on a developer's machine: the cache key is the program, the compile options and
    the jax/XLA version). The flags round some results differently in the last bits (20 AdamW steps of a tiny model:
    final losses 1.4e-6 apart out of 4.16, equal float32 sums of |parameters|); every test compares with a
    tolerance, or two runs made under the same flags, so none relies on the defaults' bits. Set before jax starts,
    through the environment, so that subprocesses inherit it.
    MINIGPT_TEST_FULL_OPT=1 runs the suite as users compile (-O3, no cache). The cache has no size limit (a run
    adds about 40 MB; JAX's limit evicts files another worker is writing); delete the folder to empty it.
    """
    if os.environ.get("MINIGPT_TEST_FULL_OPT") == "1":
        os.environ.setdefault("MINIGPT_COMPILATION_CACHE", "off")  # nor the CLI's cache in the user's home
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_CHEAP_COMPILE}".strip()
    cache = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation"
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def _keep_freed_memory_for_tests() -> None:
    """Start every worker, notebook kernel and subprocess with ``minigpt.training.hostmem``'s malloc settings.

    Why: without them each XLA:CPU execution page-faults its temporaries in afresh and the kernel zeroes them; a
    150-step training run of a 2-layer model spent 12 s of system time in that, against 2 s with them (22 s wall
    instead of 28). glibc reads ``GLIBC_TUNABLES`` at process start, so the environment is the only way to reach
    the xdist workers before their first allocation. tests/test_training_hostmem.py starts its untuned probe without it.
    """
    os.environ.setdefault("GLIBC_TUNABLES", glibc_tunables())


_compile_for_tests()
_keep_freed_memory_for_tests()

import jax  # noqa: E402  (after the environment above: jax reads it once)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def x64():
    """Run the test body with JAX float64 enabled (restored afterwards).

    Safe with @given: the context stays on for all examples and holds no per-example state.
    """
    with jax.enable_x64(True):
        yield


# Files whose parametrized cases are each a unit of work of their own: one notebook takes up to 100 s, so a file
# of them on one worker would end the run alone.
_SPLIT_BY_CASE = ("tests/test_notebooks.py", "tests/test_notebooks_exercises.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (5 s or more) first, in a stable sort.

    Why: xdist hands out units of work in collection order (``--no-loadscope-reorder``), a unit taking the place
    of its first test; so the files that hold a slow test go first and the run ends on files of short tests. A
    30-s file handed out last would finish the run alone on one worker while the other waits: unmarked, the
    training tests (test_training_loop.py alone 32 s) ran last and the workers ended 14–35 s apart, against 1–4 s
    with the marks."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201
    """Under pytest-xdist a test file is one unit of work, so its module fixtures (trained runs, the 8-device
    subprocess) are built once, on one worker; except that each case of the ``_SPLIT_BY_CASE`` files is its own.

    Why a scheduler and not ``--dist loadgroup`` with ``xdist_group`` marks: from pytest 9.2 on, xdist 3.8's
    loadgroup silently stops grouping (it renames ``item._nodeid``, which pytest no longer reads), and every
    module fixture was then built once per worker.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

    return ByFile(config, log)


def unit_of_work(nodeid: str) -> str:
    """The test's file, or the test itself in a ``_SPLIT_BY_CASE`` file."""
    path = nodeid.split("::", 1)[0]
    return nodeid if path in _SPLIT_BY_CASE else path


@pytest.fixture
def training_compile(monkeypatch):
    """LLVM at -O1 instead of -O0 for the subprocesses (notebook kernels) started in the test.

    Why: for a notebook that trains for hundreds of steps -O0's slower code costs more than its faster compiling
    saves, and -O1 (with the older emitters) beats XLA's default -O3 too. A 2-layer GPT's train step at -O0, -O1,
    -O3: first call (compile) 1.6, 2.3–3.0, 3.7 s; 100 steps 4.6, 2.4–3.2, 2.4 s. Whole notebooks, two alternating
    rounds, -O3 vs -O1: 02 43/44 vs 36/33 s, 06 35/37 vs 34/30 s, 07 26/18 vs 20/13 s, 08 51/42 vs 33/38 s, 09 50/35
    vs 42/32 s. The short lessons stay at -O0: 05 10 vs 13 s, 04 6 vs 7 s, 10 5 vs 6 s (-O0 vs -O1, twice each).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _CHEAP_COMPILE in flags:  # not under MINIGPT_TEST_FULL_OPT=1, which compiles as users do
        monkeypatch.setenv("XLA_FLAGS", flags.replace(_CHEAP_COMPILE, _TRAINING_COMPILE))

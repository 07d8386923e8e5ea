"""minigpt.training.hostmem: XLA:CPU's per-step buffers are reused instead of page-faulted in every step."""

import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.training import hostmem

# glibc's mallinfo2(), for the probes below
MALLINFO = r"""
import ctypes
class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(n, ctypes.c_size_t) for n in names.split()]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
"""

# the probes run as MALLINFO + PROBE and MALLINFO + HEAP
PROBE = r"""
import json, resource, sys
from minigpt.training import hostmem
settings = hostmem.configure_cpu()  # what the CLI does: malloc and dispatch settings before JAX starts its threads
import jax, jax.numpy as jnp, numpy as np
from minigpt.config import GPTConfig
from minigpt.training.hostmem import keep_freed_memory
from minigpt.train import StepSpec, TrainConfig, compiled_steps, dropout_key, init_params

def in_use():  # bytes glibc has handed out from the heap (large blocks included once M_MMAP_MAX = 0)
    return libc.mallinfo2().uordblks

cfg = GPTConfig.preset("baby", vocab_size=65)  # XLA's temporaries: ~45 MB per step, above glibc's mmap threshold
steps = compiled_steps(cfg, StepSpec.of(TrainConfig(batch_size=12, progress=False)))
params = jax.tree.map(jnp.asarray, init_params(cfg, 0))
opt_state = steps.tx.init(params)
xs = np.random.default_rng(0).integers(0, 65, size=(1, 12, 64)).astype(np.int32)
faults, held = [], []
for i in range(10):
    before, used = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, in_use()
    params, opt_state, out = steps.train_step(params, opt_state, xs, xs, dropout_key(0))
    float(out["loss"])
    held.append(in_use() - used)  # what the step still holds once its outputs are back
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
# the median step after warm-up: the heap may still grow once in a while, the typical step is what counts
print(json.dumps({"applied": keep_freed_memory(), "inline": settings["execute_inline"],
                  "faults_per_step": sorted(faults[3:])[3], "max_held_mb": max(held[1:]) / 2**20}))
"""


def untuned_env() -> dict[str, str]:
    """This environment without the suite's GLIBC_TUNABLES (tests/conftest.py): a probe sees glibc's defaults."""
    return {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}


def probe(opt_out: bool) -> dict:
    env = untuned_env() | {"MINIGPT_KEEP_FREED_MEMORY": "0" if opt_out else "1"}
    out = subprocess.run([sys.executable, "-c", MALLINFO + PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def probes() -> tuple[dict, dict]:
    """(tuned, opted out): one fresh process each."""
    return probe(opt_out=False), probe(opt_out=True)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_train_steps_reuse_host_memory_instead_of_page_faulting(probes):
    tuned, default = probes
    assert tuned["applied"] and not default["applied"]
    # 45 MB of fresh pages is ~11 000 faults; reused memory needs (almost) none
    assert default["faults_per_step"] > 5000
    assert tuned["faults_per_step"] < 0.2 * default["faults_per_step"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_inline_execution_frees_each_steps_temporaries_before_it_returns(probes):
    """Otherwise the next step can allocate its 45 MB (520 MB at small) before the last block is back."""
    tuned, default = probes
    assert tuned["inline"] is True and default["inline"] is False
    assert tuned["max_held_mb"] < 4, tuned  # every one of 9 steps: nothing of the ~45 MB block still held


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=0.0, max_value=1e4, allow_nan=False))
def test_pause_after_a_step_is_a_capped_fraction_of_it(step_seconds):
    with mock.patch.object(hostmem.time, "sleep") as sleep, mock.patch.object(hostmem, "_inline", False):
        hostmem.hand_over_gil(step_seconds)
    (pause,), _ = sleep.call_args
    assert pause <= hostmem.MAX_PAUSE_S
    assert pause <= hostmem.PAUSE_FRACTION * step_seconds
    # and no shorter than that: the whole fraction for short steps, the cap for long ones
    assert pause in (hostmem.MAX_PAUSE_S, hostmem.PAUSE_FRACTION * step_seconds)


def test_no_pause_when_execution_is_inline():
    with mock.patch.object(hostmem.time, "sleep") as sleep, mock.patch.object(hostmem, "_inline", True):
        hostmem.hand_over_gil(10.0)
    sleep.assert_called_once_with(0.0)


@pytest.mark.parametrize("bad", [-0.5, float("nan")])
def test_pause_rejects_a_negative_or_nan_step_time(bad):
    with pytest.raises(ValueError, match="step_seconds must be a duration >= 0"):
        hostmem.hand_over_gil(bad)


HEAP = r"""
import json, sys
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
if sys.argv[1] == "mallopt":
    from minigpt.training.hostmem import keep_freed_memory
    assert keep_freed_memory()
before = libc.mallinfo2()
block = libc.malloc(64 << 20)
mmapped = libc.mallinfo2().hblkhd - before.hblkhd  # bytes in blocks glibc mmapped for themselves
libc.free(block)
kept = libc.mallinfo2().fordblks - before.fordblks  # free bytes glibc kept instead of giving them back
print(json.dumps({"mmapped": mmapped, "kept": kept}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
@pytest.mark.parametrize("how", ["mallopt", "GLIBC_TUNABLES"])
def test_the_environment_form_and_mallopt_both_keep_a_large_block_in_the_heap(how):
    """``glibc_tunables()`` is ``keep_freed_memory()`` for a child process: the same 64 MB block comes from the
    heap instead of its own mmap, and its memory stays with the process once freed."""

    def heap(mode: str, tunables: str | None) -> dict:
        env = untuned_env() | ({"GLIBC_TUNABLES": tunables} if tunables else {})
        command = [sys.executable, "-c", MALLINFO + HEAP, mode]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    default = heap("default", None)
    tuned = heap("mallopt", None) if how == "mallopt" else heap("default", hostmem.glibc_tunables())
    assert default["mmapped"] >= 64 << 20 and default["kept"] < 64 << 20
    assert tuned["mmapped"] == 0 and tuned["kept"] >= 64 << 20

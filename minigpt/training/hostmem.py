"""Opt-in CPU tuning for training: keep freed host memory for reuse and run XLA:CPU computations inline.

Nothing here runs at import. ``configure_cpu()`` is one explicit call, made by the ``minigpt`` command line and
the benchmarks before JAX starts; notebook users may make it in their first cell (trade-off below).

Why. XLA:CPU allocates the temporaries of each execution with ``malloc``: one block of about 45 MB per train
step at preset ``baby`` and 520 MB at ``small``. glibc serves blocks above 32 MB (and every block of a worker
thread's arena) with fresh ``mmap`` pages and unmaps them on ``free``, so each step faults the whole block in
again and the kernel zeroes it: 11 000 minor page faults per step at ``baby`` and 133 000 at ``small``, about
a quarter of the step. PyTorch keeps its memory and sees ~300.

``keep_freed_memory()`` tells glibc to serve large blocks from the heap (``M_MMAP_MAX = 0``), to keep freed
memory instead of returning it (``M_TRIM_THRESHOLD``) and to use one arena for all threads (``M_ARENA_MAX = 1``;
an arena is picked at a thread's first allocation, so this only helps before JAX starts its threads). After
the first steps the same pages are reused and the faults disappear.

The heap can still fragment: if the next step allocates its block before the last one is freed, glibc grows
the heap by another block (at ``small``: 520 MB more resident memory, for good). With JAX's default
asynchronous dispatch XLA runs a step on a worker thread, marks its outputs ready and only then frees the
step's block, so the next step can win that race. ``execute_inline()`` turns asynchronous dispatch off for CPU
computations (``jax_cpu_enable_async_dispatch=False``) before JAX creates its CPU client: XLA then runs each
computation whose inputs are ready on the calling thread and frees the block before the call returns.
Measured at ``small`` with a busy process competing for the 2 cores: the heap grew by a block in 4 of 4 runs
with asynchronous dispatch and 0 of 5 (40 steps) with inline execution, and the step time did not change.
If JAX's CPU backend was already running, inline execution cannot be switched on any more; the training loop
then pauses after each step (``hand_over_gil``: 0.25 % of the step, at most 2 ms), which lowers the odds of the
race without removing them.

The trade-off, for the whole process: memory freed is not given back to the OS until it exits (the resident
size stays at its peak), one malloc arena serves every thread of every library, and all CPU JAX code in the
process dispatches synchronously (a Python loop cannot queue the next computation while one runs).
``MINIGPT_KEEP_FREED_MEMORY=0`` makes ``configure_cpu()`` do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc's <malloc.h>
# name in glibc's tunables: (mallopt option, value)
_MALLOC_SETTINGS = {
    "mmap_max": (M_MMAP_MAX, 0),
    "trim_threshold": (M_TRIM_THRESHOLD, 2**31 - 1),
    "arena_max": (M_ARENA_MAX, 1),
}
_done: bool | None = None
_inline: bool | None = None  # set by execute_inline()


def _opted_out() -> bool:
    return os.environ.get("MINIGPT_KEEP_FREED_MEMORY", "1") == "0"


def keep_freed_memory() -> bool:
    """Configure glibc malloc as described above; True if it was applied (Linux with glibc only)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or _opted_out():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    _done = all(mallopt(option, value) == 1 for option, value in _MALLOC_SETTINGS.values())
    return _done


def glibc_tunables() -> str:
    """``keep_freed_memory()``'s settings as a ``GLIBC_TUNABLES`` value, for processes you start yourself.

    glibc reads the variable when a process starts, before any thread exists, so a child started with it
    gets all three settings from its first allocation on (the test suite sets it for its workers, notebook
    kernels and subprocesses). It is the same trade-off as ``keep_freed_memory()``, for the whole child.
    """
    return ":".join(f"glibc.malloc.{name}={value}" for name, (_, value) in _MALLOC_SETTINGS.items())


def configure_cpu() -> dict[str, bool]:
    """Apply both settings (see the module docstring); call before JAX's first computation.

    Returns which took effect: ``{"keep_freed_memory": ..., "execute_inline": ...}``.
    """
    return {"keep_freed_memory": keep_freed_memory(), "execute_inline": execute_inline()}


def execute_inline() -> bool:
    """Turn off JAX's asynchronous dispatch for CPU computations; True if it is (now) in effect.

    JAX reads the flag when it creates its CPU client, so this works only before JAX's first
    computation (or if the flag was already off). ``MINIGPT_KEEP_FREED_MEMORY=0`` opts out.
    """
    global _inline
    if _inline is not None:
        return _inline
    import jax  # JAX: imported only after the settings that must precede it

    _inline = False
    if _opted_out():
        return False
    if not jax.config.values.get("jax_cpu_enable_async_dispatch", True):
        _inline = True  # already off (by the user): it counts only if it was off before the client started
        return True
    try:
        from jax._src import xla_bridge  # backends_are_initialized is not public API

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):
        started = True  # cannot tell: assume it is too late
    if not started:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
        _inline = True
    return _inline


# The pause after a step when execution is not inline: a fraction of the step's time, capped.
PAUSE_FRACTION = 0.0025
MAX_PAUSE_S = 0.002


def hand_over_gil(step_seconds: float = 0.0) -> None:
    """Call after each train step: sleep min(MAX_PAUSE_S, PAUSE_FRACTION · step_seconds), or 0 when inline.

    The sleep lets XLA free the step's temporaries before the next step allocates (see the module
    docstring); with inline execution (``execute_inline()``) they are already free, and this only yields the GIL.
    """
    if step_seconds < 0 or step_seconds != step_seconds:  # negative or NaN: a caller's timing bug
        raise ValueError(f"step_seconds must be a duration >= 0, got {step_seconds!r}")
    time.sleep(0.0 if _inline else min(MAX_PAUSE_S, PAUSE_FRACTION * step_seconds))

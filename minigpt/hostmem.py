"""Keep freed host memory for reuse, so that XLA:CPU does not page-fault its buffers in on every step.

XLA:CPU allocates the temporaries of each execution with ``malloc``: one block of about 45 MB per train
step at preset ``baby`` and 520 MB at ``small``. glibc serves blocks above 32 MB (and every block of a
worker thread's arena) with fresh ``mmap`` pages and unmaps them on ``free``, so each step faults the
whole block in again and the kernel zeroes it: 11 000 minor page faults per step at ``baby`` and
133 000 at ``small``, about a quarter of the step. PyTorch keeps its memory and sees ~300.

``keep_freed_memory()`` tells glibc to serve large blocks from the heap (``M_MMAP_MAX = 0``), to keep
freed memory instead of returning it (``M_TRIM_THRESHOLD``) and to use one arena for all threads
(``M_ARENA_MAX = 1``; an arena is picked at a thread's first allocation, so this only helps when called
before JAX starts its threads — ``import minigpt`` does it). After the first steps the same pages are
reused and the faults disappear. The cost: memory freed by the process is not given back to the OS
until it exits (the resident size stays at its peak). Set ``MINIGPT_KEEP_FREED_MEMORY=0`` to opt out.

The heap can still fragment: if the next step allocates its block before the last one is freed, glibc
grows the heap by another block. XLA frees a step's block a moment after its outputs are ready; the
training loop hands the GIL over after each step (``hand_over_gil``), which lets that happen first (at
``small``: the heap grew by a block within 8 steps in 3 of 3 runs without it, in 0 of 6 with it). It
lowers the odds, no more: ``bench/compare.py`` still sees an extra block in some runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import time

M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # glibc's <malloc.h>
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Configure glibc malloc as described above; True if it was applied (Linux with glibc only)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or os.environ.get("MINIGPT_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1), (M_ARENA_MAX, 1))
    _done = all(mallopt(option, value) == 1 for option, value in settings)
    return _done


def hand_over_gil() -> None:
    """Call after each train step: lets XLA free the step's temporaries before the next step allocates."""
    time.sleep(0)

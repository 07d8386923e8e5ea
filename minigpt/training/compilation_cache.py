"""A persistent XLA compilation cache: compile a program once per machine, not once per process.

Why. Every ``minigpt`` command and every notebook kernel is a new process, and JAX forgets what XLA compiled
when a process ends: ``minigpt sample`` spent about 5 s of its 8.8 s compiling the same decode loop again on
every call, and the first ``baby`` train step 4–5 s. JAX can keep compiled programs on disk (keyed by the
program, the compile options, the devices and the jax/XLA version, so a stale entry is never used);
``enable_compilation_cache()`` switches that on:

    from minigpt.training.compilation_cache import enable_compilation_cache
    enable_compilation_cache()          # in a notebook's first cell or a script, before the first jit

The ``minigpt`` commands that run JAX call it for you (``minigpt.cli``); importing minigpt never does.

Where. The first of: the ``path`` argument; ``MINIGPT_COMPILATION_CACHE=/some/dir``; a directory JAX was
already given (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``); ``$XDG_CACHE_HOME/minigpt/jax``, or
``~/.cache/minigpt/jax`` without XDG. ``MINIGPT_COMPILATION_CACHE=off`` turns it off (nothing is written). To
clear it, delete the directory (``rm -rf ~/.cache/minigpt/jax``); it is refilled as programs are compiled.

Several processes at once. JAX writes each entry as one file named by its key and never rewrites it, so two
processes compiling the same program write the same bytes; JAX's own size limit
(``jax_compilation_cache_max_size``) is left off, because its eviction ran while other processes were writing
and reading (the test suite saw entries disappear under a worker). The size is bounded here instead, once per
``enable_compilation_cache()`` call: under an exclusive lock, if the entries add up to more than ``max_mib``,
the least recently used ones are deleted until a quarter of the bound is free, skipping any written in the last
``GRACE_S`` seconds (a process may still be writing or about to read it). A process that reads an entry while
another deletes or writes it gets a JAX warning and compiles the program itself: slower, never wrong.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_VAR = "MINIGPT_COMPILATION_CACHE"
OFF_VALUES = frozenset({"off", "0", "false", "no", "none"})
DEFAULT_MAX_MIB = 1024  # one baby or small run's programs take a few MiB; a full test-suite run about 40 MiB
GRACE_S = 600.0  # entries younger than this are never pruned (a concurrent process may be using them)
ENTRY_SUFFIX = "-cache"  # JAX's file name for an entry: <key>-cache
LOCK_NAME = ".minigpt-prune.lock"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/minigpt/jax``, or ``~/.cache/minigpt/jax`` when XDG_CACHE_HOME is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigpt" / "jax"


def resolve_cache_dir(path: str | os.PathLike | None = None) -> Path | None:
    """Where the cache would live (see the module docstring for the order), or None when it is turned off."""
    setting = os.environ.get(ENV_VAR, "").strip()
    if setting.lower() in OFF_VALUES:
        return None
    if path is not None:
        return Path(path).expanduser()
    if setting:
        return Path(setting).expanduser()
    import jax

    configured = jax.config.values.get("jax_compilation_cache_dir")
    return Path(configured) if configured else default_cache_dir()


def enable_compilation_cache(path: str | os.PathLike | None = None, *, max_mib: float = DEFAULT_MAX_MIB) -> Path | None:
    """Keep every program XLA compiles in a directory on disk; returns it, or None if turned off.

    Call it before the first jitted computation (in a notebook, the first cell); a later call still works for
    programs compiled from then on. ``max_mib`` bounds the directory's size (pruned now, least recently used
    first). Entries are written for every program, however quick to compile: reading one is faster still.
    """
    if max_mib <= 0:
        raise ValueError(f"max_mib must be > 0, got {max_mib}; use {ENV_VAR}=off to turn the cache off")
    directory = resolve_cache_dir(path)
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"cannot create the compilation cache directory {directory}: {err}; "
            f"set {ENV_VAR} to a writable directory, or to off"
        ) from None
    prune(directory, int(max_mib * 2**20))

    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.values.get("jax_compilation_cache_dir") != str(directory):
        compilation_cache.reset_cache()  # JAX opens its cache once: a directory given later needs a fresh start
        jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_max_size", -1)  # bounded by prune(), not by JAX's eviction
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:  # the user's own threshold wins
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory


def prune(directory: Path, max_bytes: int, *, now: float | None = None) -> list[Path]:
    """Delete least recently used entries until at most 3/4 of ``max_bytes`` remain, if over ``max_bytes``.

    Recency is a file's last access or modification, whichever is later (``relatime`` mounts update the access
    time about once a day, which is enough here). Entries modified in the last ``GRACE_S`` seconds are kept.
    Holds an exclusive lock on the directory while it works; returns the deleted paths (none if another
    process holds the lock: it is pruning already).
    """
    now = time.time() if now is None else now
    with _exclusive(directory / LOCK_NAME) as locked:
        if not locked:
            return []
        entries = []
        for entry in directory.glob(f"*{ENTRY_SUFFIX}"):
            try:
                st = entry.stat()
            except FileNotFoundError:  # deleted meanwhile by someone else
                continue
            entries.append((max(st.st_atime, st.st_mtime), st.st_mtime, st.st_size, entry))
        total = sum(size for _, _, size, _ in entries)
        if total <= max_bytes:
            return []
        deleted = []
        for _, mtime, size, entry in sorted(entries, key=lambda e: e[0]):
            if total <= max_bytes * 3 // 4:
                break
            if now - mtime < GRACE_S:
                continue
            entry.unlink(missing_ok=True)
            total -= size
            deleted.append(entry)
        return deleted


class _exclusive:
    """``with _exclusive(path) as locked:`` an exclusive, non-blocking ``flock`` on ``path`` (True if held).

    Without ``fcntl`` (Windows) the lock is always granted: concurrent prunes there can only delete an
    entry twice, which ``missing_ok`` absorbs.
    """

    def __init__(self, path: Path):
        self.path, self.fd = path, None

    def __enter__(self) -> bool:
        try:
            import fcntl
        except ImportError:
            return True
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            return False
        return True

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None

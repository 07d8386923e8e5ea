"""The persistent compilation cache: where it lives, that a second process reads what the first wrote, the
opt-out, several processes at once, and the size bound (``prune``) against a brute-force LRU.

Processes are real subprocesses: JAX opens its cache once per process, and the point is what survives one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.training import compilation_cache as cc

ROOT = Path(__file__).resolve().parents[1]

# Compiles a few tiny programs (their shapes from argv, so that processes can share some and not others) and
# reports the cache's directory, hits and misses as JAX's monitoring events count them, and JAX's warnings.
PROGRAM = r"""
import json, sys, warnings
warnings.simplefilter("always")
import jax, jax.numpy as jnp
from jax import monitoring
from minigpt.training.compilation_cache import enable_compilation_cache
counts = {"hits": 0, "misses": 0}
def listen(event, **_):
    if event == "/jax/compilation_cache/cache_hits": counts["hits"] += 1
    if event == "/jax/compilation_cache/cache_misses": counts["misses"] += 1
monitoring.register_event_listener(listen)
max_mib = float(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    where = enable_compilation_cache(max_mib=max_mib)
    for n in map(int, sys.argv[2:]):
        f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(axis=0) * 3.0)
        f(jnp.ones((n, 4))).block_until_ready()
print(json.dumps({"dir": None if where is None else str(where), "warnings": [str(w.message) for w in caught],
                  "jax_dir": jax.config.values["jax_compilation_cache_dir"], **counts}))
"""


def _env(tmp_path: Path, setting: str | None) -> dict[str, str]:
    """A clean environment: HOME and XDG_CACHE_HOME in tmp_path, no cache directory from the test suite."""
    drop = {"JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", cc.ENV_VAR, "XDG_CACHE_HOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    if setting is not None:
        env[cc.ENV_VAR] = setting
    return env


def _start(tmp_path: Path, setting: str | None, *sizes: int, max_mib: float = 64) -> subprocess.Popen:
    args = [sys.executable, "-c", PROGRAM, str(max_mib), *map(str, sizes)]
    return subprocess.Popen(
        args, cwd=tmp_path, env=_env(tmp_path, setting), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _entries(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{cc.ENTRY_SUFFIX}"))


def test_a_second_process_reads_what_the_first_compiled(tmp_path):
    cache = tmp_path / "cache"
    first = _finish(_start(tmp_path, str(cache), 3, 5))
    assert first["dir"] == first["jax_dir"] == str(cache)
    written = _entries(cache)
    assert first["hits"] == 0 and first["misses"] >= 2 and len(written) == first["misses"]
    second = _finish(_start(tmp_path, str(cache), 3, 5))
    assert second["misses"] == 0 and second["hits"] == first["misses"]  # nothing compiled again
    assert _entries(cache) == written
    assert first["warnings"] == second["warnings"] == []


def test_the_default_directory_is_the_users_cache_dir(tmp_path):
    result = _finish(_start(tmp_path, None, 2))
    assert result["dir"] == str(tmp_path / "home" / ".cache" / "minigpt" / "jax")
    assert _entries(Path(result["dir"]))
    env = _env(tmp_path, None) | {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    code = "from minigpt.training.compilation_cache import default_cache_dir; print(default_cache_dir())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "xdg" / "minigpt" / "jax")


@pytest.mark.parametrize("setting", ["off", "OFF", "0", "false"])
def test_off_writes_nothing(tmp_path, setting):
    result = _finish(_start(tmp_path, setting, 3))
    assert result["dir"] is None and result["jax_dir"] is None
    assert result["hits"] == result["misses"] == 0
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []  # not in HOME, not in the working directory


def test_two_processes_at_once_share_the_cache_without_errors(tmp_path):
    """Both compile a shared program and one of their own at the same time, pruning a full cache as they start."""
    cache = tmp_path / "cache"
    cache.mkdir()
    old = time.time() - 2 * cc.GRACE_S
    for i in range(8):  # 8 old entries of 1 MiB: over the 4 MiB bound, so both processes try to prune at start
        stale = cache / f"stale{i}{cc.ENTRY_SUFFIX}"
        stale.write_bytes(b"\0" * 2**20)
        os.utime(stale, (old + i, old + i))
    a, b = _start(tmp_path, str(cache), 7, 11, max_mib=4), _start(tmp_path, str(cache), 7, 13, max_mib=4)
    ra, rb = _finish(a), _finish(b)
    assert ra["warnings"] == rb["warnings"] == []
    names = {p.name for p in _entries(cache)}
    assert sorted(n for n in names if n.startswith("stale")) == [f"stale{i}{cc.ENTRY_SUFFIX}" for i in (5, 6, 7)]
    new = len(names) - 3  # pruned once, oldest first, down to 3 MiB (3/4 of the bound)
    assert max(ra["misses"], rb["misses"]) <= new <= ra["misses"] + rb["misses"]  # the shared program: once or twice
    again = _finish(_start(tmp_path, str(cache), 7, 11, 13, max_mib=4))
    assert again["misses"] == 0 and again["hits"] == new and again["warnings"] == []


def test_bad_settings_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="max_mib must be > 0"):
        cc.enable_compilation_cache(tmp_path, max_mib=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="MINIGPT_COMPILATION_CACHE"):
        cc.enable_compilation_cache(blocker / "sub")


def _fake_cache(directory: Path, files: list[tuple[int, float]], now: float) -> list[Path]:
    """Entries of the given (size, age in seconds); last access = last modification = now - age."""
    paths = []
    for i, (size, age) in enumerate(files):
        path = directory / f"k{i:03d}{cc.ENTRY_SUFFIX}"
        path.write_bytes(b"x" * size)
        os.utime(path, (now - age, now - age))
        paths.append(path)
    return paths


@settings(max_examples=30)
@given(
    files=st.lists(st.tuples(st.integers(0, 400), st.floats(0, 4 * cc.GRACE_S)), max_size=12, unique_by=lambda f: f[1]),
    max_bytes=st.integers(1, 2000),
)
def test_prune_matches_a_brute_force_lru(tmp_path_factory, files, max_bytes):
    directory = tmp_path_factory.mktemp("cache")
    now = time.time()
    paths = _fake_cache(directory, files, now)
    (directory / "unrelated.txt").write_bytes(b"y" * 5000)  # not an entry: never counted, never deleted
    deleted = cc.prune(directory, max_bytes, now=now)

    expected, total = [], sum(size for size, _ in files)
    if total > max_bytes:
        for i in sorted(range(len(files)), key=lambda i: -files[i][1]):  # oldest first
            if total <= max_bytes * 3 // 4:
                break
            if files[i][1] >= cc.GRACE_S:
                expected.append(paths[i])
                total -= files[i][0]
    assert sorted(deleted) == sorted(expected)
    assert sorted(_entries(directory)) == sorted(set(paths) - set(expected))
    assert (directory / "unrelated.txt").exists()


def test_prune_leaves_the_cache_alone_while_another_process_holds_the_lock(tmp_path):
    now = time.time()
    paths = _fake_cache(tmp_path, [(100, 2 * cc.GRACE_S)] * 3, now)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(tmp_path / cc.LOCK_NAME)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cc.prune(tmp_path, 10, now=now) == []
    finally:
        holder.kill()
        holder.wait()
    assert _entries(tmp_path) == paths
    assert len(cc.prune(tmp_path, 10, now=now)) == 3  # once the lock is free

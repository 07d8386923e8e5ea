"""Importing minigpt changes nothing in the process (malloc, JAX's settings, matplotlib's backend, the disk);
the ``minigpt`` command line applies the CPU tuning and switches the persistent compilation cache on.

Each check runs in a fresh interpreter, because both settings are process-wide and JAX reads the dispatch
flag once. glibc's ``mallopt`` is observed through a spy on ``ctypes.CDLL`` (the only way Python reaches it).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

SPY = r"""
import ctypes, json, sys
calls = []

class SpyCDLL(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            calls.append(name)
        return super().__getattr__(name)

ctypes.CDLL = SpyCDLL
"""

IMPORT_ALL = (
    SPY
    + r"""
import importlib, os, pkgutil
import jax
import matplotlib
matplotlib.use("svg")  # stands in for a notebook's inline backend: importing minigpt must leave it
before = dict(jax.config.values)
import minigpt
names = sorted(m.name for m in pkgutil.walk_packages(minigpt.__path__, "minigpt."))
for name in names:
    importlib.import_module(name)
import minigpt.model, minigpt.generate, minigpt.testing, minigpt.train  # the names users type
changed = sorted(k for k, v in jax.config.values.items() if before.get(k, object()) != v)
result = {"modules": len(names), "mallopt": len(calls), "changed": changed, "files": sorted(os.listdir(".")),
          "backend": matplotlib.get_backend()}
from minigpt.training import hostmem
hostmem.keep_freed_memory()  # positive control: the spy does see a real call
result["mallopt_after_explicit_call"] = len(calls)
print(json.dumps(result))
"""
)

CLI = (
    SPY
    + r"""
import jax
from minigpt import cli
try:
    cli.main(["verify", "--help"])
except SystemExit:
    pass
print(json.dumps({"mallopt": len(calls), "async": jax.config.values["jax_cpu_enable_async_dispatch"],
                  "cache": jax.config.values["jax_compilation_cache_dir"]}))
"""
)


def _run(code: str, tmp_path) -> dict:
    """``code`` in a fresh interpreter, its working directory and its user's cache directory in ``tmp_path``."""
    drop = ("MINIGPT_KEEP_FREED_MEMORY", "MINIGPT_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    root = str(Path(__file__).resolve().parents[1])  # this checkout's minigpt, whichever one is installed
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_every_module_leaves_malloc_jax_and_the_disk_alone(tmp_path):
    result = _run(IMPORT_ALL, tmp_path)
    assert result["modules"] >= 30  # the walk really imported the package
    assert result["mallopt"] == 0
    assert result["changed"] == []  # jax_cpu_enable_async_dispatch and every other JAX setting as found
    assert result["files"] == []  # nothing written into the working directory
    assert result["backend"] == "svg"  # matplotlib's backend as the user chose it
    assert not (tmp_path / "xdg").exists()  # nor a compilation cache
    assert result["mallopt_after_explicit_call"] > 0


def test_the_command_line_applies_the_cpu_settings(tmp_path):
    result = _run(CLI, tmp_path)
    assert result["mallopt"] > 0
    assert result["async"] is False
    assert result["cache"] == str(tmp_path / "xdg" / "minigpt" / "jax")  # the compilation cache, on by default

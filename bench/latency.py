"""Time to the first result, in whole processes, without and with the persistent compilation cache.

    python bench/latency.py --run runs/baby --data data/reviews --rounds 2

Three commands, each started as a fresh process (what a student waits for):

* ``minigpt sample RUN --prompt 这款 --max-new-tokens 5 --strategy greedy`` (JAX backend): process wall time;
* ``minigpt train --data DATA --preset baby --max-steps 1``: process wall time, and the time to the first step
  (``elapsed_s`` of step 1 in metrics.jsonl: the first evaluation and the first step, compiles included);
* lesson 06 (``notebooks/06_training.ipynb``) executed top to bottom with nbclient, in a process of its own.

Each under three caches: ``off`` (MINIGPT_COMPILATION_CACHE=off, as before the cache existed), ``cold`` (a new,
empty cache directory: the first run on a machine) and ``warm`` (the directory the cold run filled). The
conditions alternate within each round ("off" before, between or after the cold and the warm run, moving from
round to round), so that a slow spell of a shared machine falls on all of them. Prints every round and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ("off", "cold", "warm")
NOTEBOOK = ROOT / "notebooks" / "06_training.ipynb"

EXECUTE_NOTEBOOK = r"""
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
"""


def _env(cache: str) -> dict[str, str]:
    """The user's environment, minus any cache setting of the test suite's, with ``cache`` as the cache."""
    drop = {"JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "XLA_FLAGS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["MINIGPT_COMPILATION_CACHE"] = cache
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _timed(argv: list[str], cache: str, cwd: Path) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(argv, env=_env(cache), cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stderr[-3000:]}")
    return wall


def measure(task: str, cache: str, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """One fresh process of ``task`` with ``cache`` (a directory or 'off'): its timings in seconds."""
    cli = [sys.executable, "-m", "minigpt.cli"]
    if task == "sample":
        argv = [*cli, "sample", str(args.run), "--prompt", "这款", "--max-new-tokens", "5", "--strategy", "greedy"]
        return {"wall": _timed(argv, cache, work)}
    if task == "train":
        out = work / "train-run"
        shutil.rmtree(out, ignore_errors=True)
        argv = [*cli, "train", "--data", str(args.data), "--out", str(out), "--preset", "baby", "--max-steps", "1"]
        wall = _timed(argv, cache, work)
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
        first = next(r for r in records if r.get("step") == 1 and "elapsed_s" in r)
        return {"wall": wall, "first_step": first["elapsed_s"]}
    if task == "lesson06":
        scratch = work / "nb"
        scratch.mkdir(exist_ok=True)
        return {"wall": _timed([sys.executable, "-c", EXECUTE_NOTEBOOK, str(NOTEBOOK), str(scratch)], cache, work)}
    raise ValueError(f"unknown task {task!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, default=Path("runs/baby"), help="a trained run (minigpt demo makes runs/baby)")
    p.add_argument("--data", type=Path, default=Path("data/reviews"), help="a prepared data directory")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--tasks", default="sample,train,lesson06", help="comma-separated: sample, train, lesson06")
    args = p.parse_args(argv)
    args.run, args.data = args.run.resolve(), args.data.resolve()
    for path in (args.run, args.data):
        if not path.is_dir():
            p.error(f"{path} not found; run 'minigpt demo' first (it makes data/reviews and runs/baby)")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="minigpt-latency-") as tmp:
        work = Path(tmp)
        for r in range(args.rounds):
            for task in tasks:
                cache = work / f"cache-{task}-{r}"  # new and empty for "cold"; what that run left, for "warm"
                order = [c for c in CONDITIONS if c != "off"]
                order.insert(r % 3, "off")  # "off" moves round by round; "cold" always fills the cache for "warm"
                for condition in order:
                    timing = measure(task, "off" if condition == "off" else str(cache), args, work)
                    results.setdefault((task, condition), []).append(timing)
                    shown = ", ".join(f"{k} {v:.2f} s" for k, v in timing.items())
                    print(f"round {r + 1} {task:<9} {condition:<5} {shown}", flush=True)
    print("\nmedians (seconds):")
    for task in tasks:
        for condition in CONDITIONS:
            runs = results[(task, condition)]
            shown = ", ".join(f"{k} {statistics.median(t[k] for t in runs):.2f}" for k in runs[0])
            print(f"  {task:<9} {condition:<5} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

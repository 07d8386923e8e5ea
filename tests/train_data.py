"""Shared set-up of the training and run-directory tests: a tiny data directory and one step spec.

Every whole-run test uses ``CFG`` and ``tcfg_for`` so that they share one compiled step (``compiled_steps``
caches per config) and the files stay within a few tens of seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from minigpt import GPTConfig
from minigpt.training.config import TrainConfig

CFG = GPTConfig.preset("tiny", n_layer=1, dropout=0.1)  # V=64, T=16, L=1, C=32
CFG0 = CFG.replace(dropout=0.0)  # for exact comparisons with a bigger batch (dropout masks differ)


def write_data(d: Path, vocab: int = 64, n_train: int = 3000, n_val: int = 400, seed: int = 0) -> Path:
    """A data directory in the layout of ``minigpt prepare``: a repeated random phrase (learnable)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    phrase = rng.integers(0, vocab, size=37)
    stream = np.resize(phrase, n_train + n_val).astype(np.uint16)
    np.save(d / "train.npy", stream[:n_train])
    np.save(d / "val.npy", stream[n_train:])
    (d / "meta.json").write_text(json.dumps({"vocab_size": vocab}))
    return d


def tcfg_for(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        preset="tiny",
        batch_size=4,
        grad_accum=2,
        max_steps=6,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=2,
        lr_decay_steps=6,
        eval_interval=3,
        eval_batches=2,
        log_interval=1,
        ckpt_interval=3,
        progress=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def cli_args(data: Path, out: Path) -> list[str]:
    """``minigpt train`` arguments for the same run as ``tcfg_for(data, out)`` with ``CFG``."""
    argv = ["--data", str(data), "--out", str(out), "--preset", "tiny", "--n_layer", "1", "--dropout", "0.1"]
    argv += ["--batch_size", "4", "--grad_accum", "2", "--lr", "3e-3", "--min_lr", "3e-4", "--warmup_steps", "2"]
    argv += ["--lr_decay_steps", "6", "--max_steps", "6", "--eval_interval", "3", "--eval_batches", "2"]
    return argv + ["--log_interval", "1", "--ckpt_interval", "3", "--progress", "false"]


def jparams(params):
    return jax.tree.map(jnp.asarray, params)


def damage(step_dir: Path, how: str, item: str = "params") -> Path:
    """Damage the largest array-data file of ``item`` in a checkpoint folder: 'truncate' it to half, 'flip' one bit,
    or 'delete' it (a half-written copy).

    Array data lives in Orbax's OCDBT data files (``ocdbt.process_N/d/*``), not in its JSON metadata.
    """
    files = [p for p in (step_dir / item).glob("ocdbt.process_*/d/*") if p.is_file()]
    target = max(files, key=lambda p: p.stat().st_size)
    if how == "delete":
        target.unlink()
        return target
    data = bytearray(target.read_bytes())
    if how == "truncate":
        data = data[: len(data) // 2]
    elif how == "flip":
        data[len(data) // 2] ^= 0x10
    else:
        raise ValueError(how)
    target.write_bytes(bytes(data))
    return target


_HOLD_LOCK = """
import sys, time
from minigpt.training.runs import locked
with locked(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def lock_holder(run: Path) -> subprocess.Popen:
    """Another process holding RUN's trainer lock (``minigpt.training.runs.locked``) until killed; returns once it
    does."""
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(run)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    if proc.stdout.readline().strip() != "locked":
        proc.kill()
        proc.wait()
        raise AssertionError("the lock-holding process did not take the lock")
    return proc

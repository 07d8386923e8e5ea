"""Training the Flax GPT with Optax and Orbax (``minigpt train``), one module per concern:

    config       TrainConfig (each field's doc is its --help line) and the rules for resuming a run
    optim        learning-rate schedule, global norm and clipping, AdamW
    distributed  the device mesh: data parallel and FSDP shardings, multi-host start-up, memory per device
    step         the jitted train / eval step on a device mesh (one device: a 1×1 mesh)
    inputs       the token streams (``minigpt.data``) and the deterministic batches
    init_from    starting from another run or a Hugging Face directory (``--init_from``)
    progress     tokens/s, MFU and the progress bar
    signals      Ctrl-C / SIGTERM: finish the step, save, stop
    checkpoint   Orbax checkpoints with checksums; a damaged one falls back to the newest that restores
    runs         the run directory: config.json, metrics.jsonl, the lock, ``load_run`` (no JAX to read one)
    hostmem      opt-in CPU tuning of the process (the ``minigpt`` command line applies it)
    loop         ``train()``: build → restore → for each step: batch → step → log / eval / save

``minigpt train`` itself is ``minigpt.commands.train``. Names are imported on first use, so that reading a run
directory or ``minigpt train --help`` answers before JAX has loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "TrainConfig": "config",
    "learning_rate": "optim",
    "make_optimizer": "optim",
    "global_norm": "optim",
    "clip_by_global_norm": "optim",
    "StepSpec": "step",
    "Steps": "step",
    "compiled_steps": "step",
    "dropout_key": "step",
    "init_params": "step",
    "flops_per_token": "progress",
    "matmul_peak_flops": "progress",
    "train": "loop",
    "evaluate": "loop",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'minigpt.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"minigpt.training.{_HOME[name]}"), name)

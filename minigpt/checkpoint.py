"""Orbax checkpoints of a training run: parameters, optimizer state and a JSON record of everything else.

One checkpoint is the directory ``RUN/checkpoints/<step>/`` holding three items:

    params     the model, reference layout (``minigpt.params``), float32
    opt_state  the Optax state (AdamW moments, step count), same leaves as params
    meta       JSON: step, seed, dropout key, model and train configs, tokenizer folder

Orbax writes a checkpoint into a temporary directory and renames it when complete, so a
process killed while saving (even with SIGKILL) leaves the previous checkpoint as the latest
loadable one. ``keep`` bounds how many checkpoints stay on disk (oldest deleted first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from minigpt.config import GPTConfig
from minigpt.params import Params, param_shapes, unflatten_params


def manager(directory: str | Path, keep: int | None = None, *, read_only: bool = False) -> ocp.CheckpointManager:
    """A synchronous ``CheckpointManager`` over ``directory`` keeping the last ``keep`` checkpoints."""
    # Orbax's read_only option logs warnings on every use; a manager that never saves is read-only in effect.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only, enable_async_checkpointing=False)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save(mngr: ocp.CheckpointManager, step: int, params: Params, opt_state: Any, meta: dict[str, Any]) -> None:
    """Write checkpoint ``step`` (blocking; complete or absent, never half-written)."""
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta),
    )
    mngr.save(step, args=args, force=True)
    mngr.wait_until_finished()


def abstract_params(cfg: GPTConfig, dtype: Any = jnp.float32) -> Params:
    """Shapes and dtypes of the parameters (``jax.ShapeDtypeStruct`` leaves), the restore target."""
    return unflatten_params({name: jax.ShapeDtypeStruct(shape, dtype) for name, shape in param_shapes(cfg).items()})


def latest_step(directory: str | Path) -> int | None:
    """The newest complete checkpoint's step, or None when there is none."""
    if not Path(directory).is_dir():
        return None
    return manager(directory, read_only=True).latest_step()


def _pick_step(mngr: ocp.CheckpointManager, directory: Path, step: int | None) -> int:
    steps = sorted(mngr.all_steps())
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {directory}; train first with 'minigpt train --out RUN_DIR'")
    if step is None:
        return steps[-1]
    if step not in steps:
        raise ValueError(f"no checkpoint for step {step} in {directory}; available steps: {steps}")
    return step


def restore_meta(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """The JSON record of checkpoint ``step`` (latest when None)."""
    mngr = manager(directory, read_only=True)
    step = _pick_step(mngr, Path(directory), step)
    return mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta


def restore(
    directory: str | Path, cfg: GPTConfig, abstract_opt_state: Any | None, step: int | None = None
) -> tuple[Params, Any, dict[str, Any]]:
    """(params, opt_state, meta) of checkpoint ``step`` (latest when None); opt_state is None when not asked for.

    ``abstract_opt_state`` is the structure to restore into (``jax.eval_shape(tx.init, params)``).
    """
    directory = Path(directory)
    mngr = manager(directory, read_only=True)
    step = _pick_step(mngr, directory, step)
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    saved = GPTConfig.from_dict(meta["model"])
    if saved != cfg:
        raise ValueError(f"checkpoint {directory / str(step)} holds a model {saved}, not the requested {cfg}")
    items = {"params": ocp.args.StandardRestore(_on_default_device(abstract_params(cfg)))}
    if abstract_opt_state is not None:
        items["opt_state"] = ocp.args.StandardRestore(_on_default_device(abstract_opt_state))
    restored = mngr.restore(step, args=ocp.args.Composite(**items))
    opt_state = restored.opt_state if abstract_opt_state is not None else None
    return restored.params, opt_state, meta


def _on_default_device(abstract: Any) -> Any:
    """Restore targets without a sharding go to the default device, whatever mesh the checkpoint was saved from
    (Orbax would otherwise try to rebuild the saving run's device layout and fail on another topology)."""
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

    def one(a: Any) -> Any:
        if getattr(a, "sharding", None) is not None:
            return a
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device)

    return jax.tree.map(one, abstract)


def to_numpy(tree: Any) -> Any:
    """Every leaf as a NumPy array (host copy)."""
    return jax.tree.map(np.asarray, tree)

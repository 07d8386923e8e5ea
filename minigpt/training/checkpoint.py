"""Orbax checkpoints of a training run: parameters, optimizer state and a JSON record of everything else.

One checkpoint is the directory ``RUN/checkpoints/<step>/`` holding three items:

    params     the model, reference layout (``minigpt.params``), float32; a LoRA run's adapters beside it
               (``minigpt.adapters.join``: ``h.0.attn.c_attn.{weight, bias, A, B}``)
    opt_state  the Optax state (AdamW moments, step count), same leaves as the trained tree (params, or
               with LoRA the adapters alone)
    meta       JSON: step, seed, dropout key, model and train configs, tokenizer folder, and the sha256 of
               params, opt_state and the rest of meta

Orbax writes a checkpoint into a temporary directory and renames it when complete, so a
process killed while saving (even with SIGKILL) leaves the previous checkpoint as the latest
loadable one. ``keep`` bounds how many checkpoints stay on disk (oldest deleted first).

A disk that fills during a save is reported as ``OSError(ENOSPC)`` naming the step, with the unfinished temporary
directory removed (Orbax reports TensorStore's failed writes as a ``ValueError`` with a page of context, and its
unawaited write tasks log their tracebacks when collected); the checkpoints saved before stay as they were.

Damage after the fact is caught on restore: a truncated or missing file fails to read, and a flipped bit is
caught by the checksums — Orbax/TensorStore load a bit flip in the array data without complaint (tried with
orbax-checkpoint 0.12: one changed float came back). ``restore`` then falls back to the newest checkpoint that
restores and says so.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from minigpt.adapters import LoraSpec, adapter_shapes, spec_from_train
from minigpt.config import GPTConfig
from minigpt.params import Params, param_shapes, unflatten_params


class CheckpointError(ValueError):
    """No checkpoint (or not the one asked for) restores intact."""


def manager(directory: str | Path, keep: int | None = None, *, read_only: bool = False) -> ocp.CheckpointManager:
    """A synchronous ``CheckpointManager`` over ``directory`` keeping the last ``keep`` checkpoints."""
    # Orbax's read_only option logs warnings on every use; a manager that never saves is read-only in effect.
    # A writer removes the temporary directories of saves that failed (a full disk) before it saves again.
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=not read_only, enable_async_checkpointing=False, cleanup_tmp_directories=not read_only
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def tree_sha256(tree: Any) -> str:
    """sha256 over every leaf's path, dtype, shape and bytes (C order): equal iff the arrays are bit-identical."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:  # other processes hold some shards
            leaf = multihost_utils.process_allgather(leaf, tiled=True)
        host = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{jax.tree_util.keystr(path)}:{host.dtype.str}:{host.shape};".encode())
        digest.update(host.tobytes())
    return digest.hexdigest()


def _meta_sha256(meta: dict[str, Any]) -> str:
    rest = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def save(mngr: ocp.CheckpointManager, step: int, params: Params, opt_state: Any, meta: dict[str, Any]) -> None:
    """Write checkpoint ``step`` (blocking; complete or absent, never half-written), checksums in its meta.

    A full disk raises ``OSError(ENOSPC)`` naming the step, after removing the unfinished copy (``disk_full``).
    """
    meta = {**meta, "sha256": {"params": tree_sha256(params), "opt_state": tree_sha256(opt_state)}}
    meta["sha256"]["meta"] = _meta_sha256(meta)
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        meta=ocp.args.JsonSave(meta),
    )
    with _quiet_failed_tasks(collect=False):
        try:
            mngr.save(step, args=args, force=True)
            mngr.wait_until_finished()
            return
        except Exception as e:  # noqa: BLE001 - Orbax raises TensorStore's write errors as ValueError
            if not disk_full(e):
                raise
            reason = _reason(e)
        gc.collect()  # the failed write's tasks, unreferenced now, are collected while their records are dropped
    directory = Path(mngr.directory)
    for unfinished in directory.glob(f"{step}.orbax-checkpoint-tmp*"):  # Orbax's name for a save in progress
        shutil.rmtree(unfinished, ignore_errors=True)
    raise OSError(errno.ENOSPC, f"no space left on the device for checkpoint step {step} ({reason})", str(directory))


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` (or an error it came from) is a write that ran out of space: ``OSError`` ENOSPC/EDQUOT,
    or TensorStore's RESOURCE_EXHAUSTED naming ``os_error_code=28`` (how Orbax reports it, as a ValueError)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(seen)
        if "RESOURCE_EXHAUSTED" in text and (f"os_error_code='{errno.ENOSPC}'" in text or "No space left" in text):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def abstract_params(cfg: GPTConfig, dtype: Any = jnp.float32, lora: LoraSpec | None = None) -> Params:
    """Shapes and dtypes of the parameters (``jax.ShapeDtypeStruct`` leaves), the restore target; with ``lora``,
    the adapters' too, beside the weights they adapt."""
    shapes = param_shapes(cfg) | ({} if lora is None else adapter_shapes(cfg, lora))
    return unflatten_params({name: jax.ShapeDtypeStruct(shape, dtype) for name, shape in shapes.items()})


def latest_step(directory: str | Path) -> int | None:
    """The newest complete checkpoint's step, or None when there is none (not checked for damage)."""
    if not Path(directory).is_dir():
        return None
    return manager(directory, read_only=True).latest_step()


def _candidates(mngr: ocp.CheckpointManager, directory: Path, step: int | None) -> list[int]:
    steps = sorted(mngr.all_steps())
    if not steps:
        raise FileNotFoundError(f"no checkpoint in {directory}; train first with 'minigpt train --out RUN_DIR'")
    if step is None:
        return steps[::-1]
    if step not in steps:
        raise ValueError(f"no checkpoint for step {step} in {directory}; available steps: {steps}")
    return [step]


def _restore_meta(mngr: ocp.CheckpointManager, step: int) -> dict[str, Any]:
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    sums = meta.get("sha256")
    if sums is not None and _meta_sha256(meta) != sums.get("meta"):
        raise CheckpointError("its meta record does not match its checksum")
    return meta


def restore_meta(directory: str | Path, step: int | None = None) -> dict[str, Any]:
    """The JSON record of checkpoint ``step`` (latest when None)."""
    mngr = manager(directory, read_only=True)
    return _restore_meta(mngr, _candidates(mngr, Path(directory), step)[0])


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _quiet_failed_tasks(*, collect: bool = True):
    """Orbax reads and writes a checkpoint's arrays in concurrent asyncio tasks; when the files are damaged or the
    disk is full, the tasks it never awaits log 'Task exception was never retrieved' and a page of TensorStore
    spec once they are collected (and raise 'Event loop is closed' from their callbacks); a failed save's worker
    threads also log their tracebacks through absl. ``restore`` and ``save`` report the failure in one line
    themselves, so those records are dropped meanwhile.
    ``collect=False`` leaves the (slow) garbage collection to the caller, who does it only after a failure."""
    logs = [logging.getLogger(name) for name in ("asyncio", "absl")]
    levels, hook = [log.level for log in logs], sys.unraisablehook
    for log in logs:
        log.setLevel(logging.CRITICAL + 1)
    sys.unraisablehook = lambda unraisable: None  # their callbacks also hit a closed event loop when collected
    try:
        yield
    finally:
        if collect:
            gc.collect()  # collect the failed tasks now, while their records are still dropped
        for log, level in zip(logs, levels, strict=True):
            log.setLevel(level)
        sys.unraisablehook = hook


def _reason(error: BaseException) -> str:
    """The first line of an error, short: TensorStore's messages run to many lines of C++ context."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return text if len(text) <= 160 else text[:157] + "..."


def restore(
    directory: str | Path,
    cfg: GPTConfig | None,
    abstract_opt_state: Any | None,
    step: int | None = None,
    *,
    shardings: tuple[Any, Any] | None = None,
    check: Callable[[dict[str, Any]], Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[Params, Any, dict[str, Any]]:
    """(params, opt_state, meta) of checkpoint ``step``, or of the newest one that restores when ``step`` is None.

    ``cfg`` None takes the model from the checkpoint. ``abstract_opt_state`` is the structure to restore into
    (``jax.eval_shape(tx.init, params)``); None skips the optimizer state (returned as None). ``shardings``:
    (params, opt_state) shardings to restore into, e.g. a mesh's FSDP layout; by default everything goes onto
    this process's first device, whatever mesh the checkpoint was saved from. ``check(meta)`` may raise to
    refuse a checkpoint that is intact but wrong (its error propagates). A damaged checkpoint is reported with
    its step and path through ``warn`` (default: stderr) and skipped; ``CheckpointError`` when none restores.
    """
    directory = Path(directory)
    mngr = manager(directory, read_only=True)
    with _quiet_failed_tasks():
        return _restore_newest(mngr, directory, cfg, abstract_opt_state, step, shardings, check, warn)


def _restore_newest(mngr, directory, cfg, abstract_opt_state, step, shardings, check, warn):
    problems = []
    for candidate in _candidates(mngr, directory, step):
        where = f"checkpoint step {candidate} ({directory / str(candidate)})"
        try:
            meta = _restore_meta(mngr, candidate)
            saved = GPTConfig.from_dict(meta["model"])
        except Exception as e:  # noqa: BLE001 - any failure to read means the files are damaged
            problems.append((where, _reason(e)))
            (warn or _stderr)(f"{where} does not restore: {_reason(e)}")
            continue
        if cfg is not None and saved != cfg:
            raise ValueError(f"checkpoint {directory / str(candidate)} holds a model {saved}, not the requested {cfg}")
        if check is not None:
            check(meta)
        try:
            params, opt_state = _restore_arrays(mngr, candidate, saved, abstract_opt_state, meta, shardings)
        except Exception as e:  # noqa: BLE001 - truncated/missing files, or a checksum that does not match
            problems.append((where, _reason(e)))
            (warn or _stderr)(f"{where} does not restore: {_reason(e)}")
            continue
        if problems:
            (warn or _stderr)(f"using checkpoint step {candidate}, the newest one that restores")
        return params, opt_state, meta
    if step is not None:
        raise CheckpointError(
            f"{problems[0][0]} does not restore ({problems[0][1]}); pick another --step, or delete that folder"
        )
    raise CheckpointError(
        f"none of the {len(problems)} checkpoints in {directory} restores (newest: {problems[0][1]}); "
        "start a new run with another --out (or without --resume)"
    )


def _restore_arrays(
    mngr: ocp.CheckpointManager,
    step: int,
    cfg: GPTConfig,
    abstract_opt_state: Any | None,
    meta: dict[str, Any],
    shardings: tuple[Any, Any] | None,
) -> tuple[Params, Any]:
    param_sh, opt_sh = shardings if shardings is not None else (None, None)
    abstract = abstract_params(cfg, lora=spec_from_train(meta.get("train", {})))
    items = {"params": ocp.args.StandardRestore(_targets(abstract, param_sh))}
    if abstract_opt_state is not None:
        items["opt_state"] = ocp.args.StandardRestore(_targets(abstract_opt_state, opt_sh))
    restored = mngr.restore(step, args=ocp.args.Composite(**items))
    sums = meta.get("sha256")  # checkpoints written before checksums were added have none to compare
    for name in items if sums is not None else ():
        if tree_sha256(restored[name]) != sums[name]:
            raise CheckpointError(f"its {name} do not match their checksum (the files changed after saving)")
    return restored["params"], restored["opt_state"] if abstract_opt_state is not None else None


def _targets(abstract: Any, shardings: Any | None) -> Any:
    """Restore targets with ``shardings``, or on the default device when there are none (Orbax would otherwise
    try to rebuild the saving run's device layout and fail on another topology)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    if shardings is not None:
        return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)

    def one(a: Any) -> Any:
        if getattr(a, "sharding", None) is not None:
            return a
        return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device)

    return jax.tree.map(one, abstract)


def to_numpy(tree: Any) -> Any:
    """Every leaf as a NumPy array (host copy)."""
    return jax.tree.map(np.asarray, tree)

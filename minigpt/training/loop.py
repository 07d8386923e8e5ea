"""``train()``: build → restore → for each step: batch → step → log / eval / save.

Batches (``inputs.micro_batches``) and dropout keys (``fold_in(key, step)``) are pure functions of the step, so a
run resumed from a checkpoint repeats the uninterrupted run bit for bit, on any mesh. The run directory
(``minigpt.training.runs``) is locked for the whole run: one trainer per directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from minigpt import adapters
from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.training import chat_inputs, checkpoint, dpo, hostmem, init_from, runs
from minigpt.training.config import TrainConfig, pin_decay, resume_config
from minigpt.training.inputs import load_tokens, micro_batches, samplers
from minigpt.training.progress import Progress
from minigpt.training.signals import StopSignal
from minigpt.training.step import Steps, StepSpec, compiled_steps, dropout_key, dropout_key_from_data, init_params
from minigpt.viz.loss import plot_run  # matplotlib: only once the run is over


@dataclasses.dataclass
class State:
    """What a checkpoint holds and the loop carries: the arrays, the step reached and the run's dropout key.

    With LoRA, ``params`` is the frozen base, ``lora`` the adapters and ``opt_state`` the adapters' alone.
    """

    params: Params
    opt_state: Any
    step: int
    key: jax.Array
    lora: Params | None = None


def train(
    cfg: GPTConfig,
    tcfg: TrainConfig,
    *,
    resume: bool = False,
    callback: Callable[[int, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``cfg`` with ``tcfg`` into ``tcfg.out``; returns a summary dict.

    summary["status"] is "done", "interrupted" (SIGINT/SIGTERM: saved, resumable) or "nan" (stopped at the
    first non-finite loss or gradient; the last checkpoint is the last good state). ``callback(step, record)``
    is called after every optimizer step (for notebooks and tests).
    """
    if tcfg.task == "dpo" and not resume and tcfg.init_from is None:
        raise ValueError("--task dpo starts from a fine-tuned model, its reference: pass --init_from SFT_RUN")
    run_dir, ckpt_dir = Path(tcfg.out), runs.checkpoint_dir(tcfg.out)
    inputs = load_tokens(cfg, tcfg) if tcfg.task == "lm" else chat_inputs.load_chat(cfg, tcfg, log)
    with _lock(run_dir):
        if resume:
            tcfg, state = _resume(cfg, tcfg, run_dir, log)
        else:
            tcfg = _fresh_run(tcfg, ckpt_dir)
            state = State(None, None, 0, dropout_key(tcfg.seed))
            if tcfg.init_from:
                state.params, origin = init_from.initial_params(cfg, tcfg, log)
        steps = _compiled(cfg, tcfg)
        state = _placed(steps, cfg, tcfg, state)
        runs.write_config(run_dir, cfg.to_dict(), dataclasses.asdict(tcfg))
        has_tokenizer = runs.copy_tokenizer(tcfg.data, run_dir)
        if tcfg.task == "dpo":
            train_batches, val_batches = dpo.pair_samplers(
                steps, state, inputs, cfg, tcfg, run_dir, resume, log, chat_inputs.VAL_SEED
            )
        elif tcfg.task == "sft":
            train_batches = chat_inputs.ChatSampler(inputs["train"], cfg.block_size, tcfg.batch_size, tcfg.seed)
            val_batches = chat_inputs.ChatSampler(inputs["val"], cfg.block_size, tcfg.batch_size, chat_inputs.VAL_SEED)
        else:
            train_batches, val_batches = samplers(*inputs, cfg, tcfg)
        mngr = checkpoint.manager(ckpt_dir, keep=tcfg.keep_checkpoints)
        metrics = runs.MetricsLog(run_dir, state.step if resume else None)
        if not resume and tcfg.init_from:
            metrics.write({"step": 0, "init_from": origin})
        progress = Progress(cfg, tcfg, state.step)

        def save() -> None:
            if checkpoint.latest_step(ckpt_dir) != state.step:
                tree = adapters.join(state.params, state.lora)  # a LoRA run: the base and its adapters
                checkpoint.save(mngr, state.step, tree, state.opt_state, _meta(cfg, tcfg, state, has_tokenizer))

        def run_eval() -> float:
            if tcfg.task == "dpo":  # the DPO loss, reward accuracy and margin, and the log-ratios
                record = dpo.evaluate(steps, state.params, val_batches, tcfg.eval_batches, state.lora)
                metrics.write({"step": state.step, **record})
                return record["val_loss"]
            val = evaluate(steps, state.params, val_batches, tcfg.eval_batches, state.lora)
            metrics.write({"step": state.step, "val_loss": val, "val_ppl": math.exp(min(val, 700.0))})
            return val

        status, loss, val, k = "done", math.nan, math.nan, tcfg.grad_accum
        try:
            with StopSignal() as stop:
                val = run_eval() if state.step == 0 else val
                while state.step < tcfg.max_steps:
                    xs, ys = micro_batches(train_batches, state.step, k)
                    loss, grad_norm = _advance(steps, state, xs, ys)
                    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                        status = "nan"
                        log(_nan_message(state.step + 1, loss, grad_norm, ckpt_dir))
                        break
                    state.step += 1
                    record, logged = progress.record(state.step, loss, grad_norm)
                    if logged:
                        metrics.write(record)
                    with progress.paused():
                        if state.step % tcfg.eval_interval == 0 and state.step < tcfg.max_steps:
                            val = run_eval()
                            progress.write(f"step {state.step}: train loss {loss:.4f}, val loss {val:.4f}")
                        if state.step % tcfg.ckpt_interval == 0 or state.step == tcfg.max_steps:
                            save()
                    if callback is not None:
                        callback(state.step, record)
                    if stop.received is not None:
                        status = "interrupted"
                        save()
                        break
                if status == "done":
                    save()
                    val = run_eval()
        except OSError as e:
            if not checkpoint.disk_full(e):
                raise
            raise runs.RunNotWritable(_disk_full_message(state.step, run_dir, ckpt_dir)) from None
        finally:
            progress.close()
            metrics.close()
            mngr.close()
    return _summary(status, state.step, loss, val, progress.elapsed(), run_dir, log)


def _advance(steps: Steps, state: State, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    """One optimizer step in place on ``state`` (its step counter is left to the caller); (loss, grad norm)."""
    t_step = time.perf_counter()
    key = jax.random.fold_in(state.key, state.step)
    if state.lora is None:
        state.params, state.opt_state, out = steps.train_step(state.params, state.opt_state, xs, ys, key)
    else:  # LoRA: the adapters are trained and returned, the base params stay as they are
        state.lora, state.opt_state, out = steps.train_step(state.params, state.opt_state, xs, ys, key, state.lora)
    loss, grad_norm = float(out["loss"]), float(out["grad_norm"])
    hostmem.hand_over_gil(time.perf_counter() - t_step)
    return loss, grad_norm


def evaluate(steps: Steps, params: Params, sampler: Any, n_batches: int, lora: Params | None = None) -> float:
    """Mean token loss over the fixed batches 0..n_batches-1 of ``sampler`` (dropout off; ``lora``: adapters)."""
    total, count = 0.0, 0
    for i in range(n_batches):
        x, y = sampler.batch(i)
        s, n = steps.eval_step(params, x, y, lora)
        total += float(s)
        count += int(n)
    return total / count


def _compiled(cfg: GPTConfig, tcfg: TrainConfig) -> Steps:
    """The run's compiled steps: DPO's for ``--task dpo``, else the token loss's (LM and SFT alike)."""
    if tcfg.task == "dpo":
        return dpo.compiled_dpo_steps(cfg, StepSpec.of(tcfg), tcfg.mesh)
    return compiled_steps(cfg, StepSpec.of(tcfg), tcfg.mesh)


def _lock(run_dir: Path) -> contextlib.AbstractContextManager:
    # One lock per run, held by process 0: in a multi-process run every process writes the same directory.
    return runs.locked(run_dir) if jax.process_index() == 0 else contextlib.nullcontext(run_dir)


def _fresh_run(tcfg: TrainConfig, ckpt_dir: Path) -> TrainConfig:
    existing = checkpoint.latest_step(ckpt_dir)
    if existing is not None:
        raise ValueError(
            f"{ckpt_dir.parent} already holds checkpoints (latest step {existing}); pass --resume to continue it, "
            "or choose another --out (nothing was overwritten)"
        )
    return pin_decay(tcfg)  # fixed now: resuming with more steps keeps the schedule


def _resume(cfg: GPTConfig, tcfg: TrainConfig, run_dir: Path, log: Callable[[str], None]) -> tuple[TrainConfig, State]:
    """(the resumed run's config, its state) from the newest checkpoint that restores, in the requested mesh."""
    ckpt_dir = runs.checkpoint_dir(run_dir)
    if checkpoint.latest_step(ckpt_dir) is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {ckpt_dir}; start a new run without --resume")
    probe = _compiled(cfg, tcfg)  # only its optimizer structure and shardings
    abstract_opt = jax.eval_shape(probe.tx.init, probe.abstract_trained)
    params, opt_state, meta = checkpoint.restore(
        ckpt_dir,
        cfg,
        abstract_opt,
        shardings=(probe.checkpoint_shardings, probe.opt_shardings),
        check=lambda saved: resume_config(saved, cfg, tcfg, run_dir),
        warn=lambda message: log(f"warning: {message}"),
    )
    tcfg = resume_config(meta, cfg, tcfg, run_dir)
    start = int(meta["step"])
    _set_aside_newer(ckpt_dir, start, log)
    log(f"resuming {run_dir} from step {start}")
    params, lora = adapters.split(params)
    return tcfg, State(params, opt_state, start, dropout_key_from_data(meta["dropout_key"]), lora)


def _set_aside_newer(ckpt_dir: Path, start: int, log: Callable[[str], None]) -> None:
    """Checkpoints newer than the one resumed from did not restore: move them out of the way, not delete them
    (the run will save those steps again)."""
    for path in sorted(ckpt_dir.iterdir()):
        if path.name.isdigit() and int(path.name) > start:
            target = ckpt_dir.parent / "damaged" / path.name
            target.parent.mkdir(exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            path.rename(target)
            log(f"moved the damaged checkpoint {path} to {target}")


def _placed(steps: Steps, cfg: GPTConfig, tcfg: TrainConfig, state: State) -> State:
    """A fresh run's initial parameters (unless --init-from gave them), its LoRA adapters and its optimizer state
    in the mesh's layout (restored ones already are)."""
    if state.opt_state is None:  # a fresh run, perhaps with --init-from's weights
        state.params = steps.place_params(init_params(cfg, tcfg.seed) if state.params is None else state.params)
        if tcfg.lora is not None:  # adapters on whatever base the run starts from; B = 0: the same model at step 0
            state.lora = steps.place_adapters(adapters.init_adapters(cfg, tcfg.lora, tcfg.seed))
        state.opt_state = steps.init_opt_state(state.params if state.lora is None else state.lora)
    return state


def _meta(cfg: GPTConfig, tcfg: TrainConfig, state: State, has_tokenizer: bool) -> dict[str, Any]:
    return {
        "step": state.step,
        "seed": tcfg.seed,
        "dropout_key": np.asarray(jax.random.key_data(state.key)).tolist(),
        "model": cfg.to_dict(),
        "train": dataclasses.asdict(tcfg),
        "tokenizer": runs.TOKENIZER if has_tokenizer else None,
        "data": {"sampler_seed": tcfg.seed, "next_batch": state.step * tcfg.grad_accum},
    }


def _nan_message(step: int, loss: float, grad_norm: float, ckpt_dir: Path) -> str:
    last = checkpoint.latest_step(ckpt_dir)
    kept = f"the last good checkpoint is step {last} in {ckpt_dir}"
    if last is None:
        kept = "no checkpoint has been saved yet"
    what = "loss" if not math.isfinite(loss) else "gradient norm"
    advice = "then start again or resume from it" if last is not None else "then start again"
    return (
        f"stopped: non-finite {what} at step {step} (loss {loss}, grad norm {grad_norm}); {kept}. "
        f"Lower --lr or raise --warmup_steps, {advice}."
    )


def _disk_full_message(step: int, run_dir: Path, ckpt_dir: Path) -> str:
    last = checkpoint.latest_step(ckpt_dir)  # the failed save left nothing behind (``checkpoint.save``)
    if last is None:
        kept, then = "no checkpoint had been saved", "then start again"
    else:
        kept = f"the last good checkpoint is step {last} ({ckpt_dir / str(last)})"
        then = f"then continue with: minigpt train --resume --out {run_dir}"
    return (
        f"the disk holding {run_dir} is full (no space left on device): training stopped at step {step} and {kept}. "
        f"Free some space (or lower --keep_checkpoints), {then}"
    )


def _summary(
    status: str, step: int, loss: float, val: float, wall: float, run_dir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    last = checkpoint.latest_step(runs.checkpoint_dir(run_dir))
    summary = {
        "status": status,
        "step": step,
        "train_loss": loss,
        "val_loss": val,
        "val_ppl": math.exp(min(val, 700.0)) if math.isfinite(val) else math.nan,
        "wall_s": wall,
        "checkpoint": None if last is None else str(runs.checkpoint_dir(run_dir) / str(last)),
        "run_dir": str(run_dir),
    }
    try:
        summary["plot"] = str(plot_run(run_dir))
    except (ValueError, OSError) as e:  # no points to plot yet, or no space left for the image
        log(f"no plot: {e}")
    return summary

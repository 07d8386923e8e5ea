"""``minigpt train --task dpo``: the jitted DPO step, the frozen reference's log-probs, and the DPO evaluation.

The policy starts from ``--init_from`` (an SFT run); the reference π_ref is that same starting model. Its
log-probs of every chosen and rejected reply the run will sample are computed once, before the first step, with
the starting weights (dropout off), saved in the run directory (``REF_LOGPS``, so ``--resume`` reads them back
instead of recomputing them from a model that has since moved) and enter each batch as constants: π_ref is never run
again and never differentiated. The step is ``Steps``' (one jit, donated state, LoRA, accumulation over k
micro-batches) with the loss ``minigpt.model.dpo_loss`` of the policy's summed reply log-probs; it runs on one
device. Each evaluation logs the DPO loss, reward accuracy, reward margin and the policy-vs-reference
log-ratios on the same validation pairs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minigpt import model
from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.training.chat_inputs import IGNORE, PairSampler, pair_batch
from minigpt.training.config import TrainConfig
from minigpt.training.optim import global_norm
from minigpt.training.step import Steps, StepSpec, model_logits

REF_BATCH = 64  # pairs per forward pass when π_ref's log-probs are computed (one shape: one compilation)
REF_LOGPS = "ref_logps_{split}.npy"  # (n_pairs, 2): log π_ref of each pair's chosen and rejected reply


def _pair_terms(logps: jax.Array, ref: jax.Array, beta: float) -> tuple[jax.Array, ...]:
    """(chosen, rejected, ref chosen, ref rejected, β) from the stacked (2B,) rows, chosen first."""
    B = logps.shape[0] // 2
    return logps[:B], logps[B:], ref[:B], ref[B:], beta


def dpo_train_step(
    params: Params, opt_state: Any, xs: jax.Array, ys: tuple[jax.Array, jax.Array], key: jax.Array,
    frozen: Params | None = None, *, cfg: GPTConfig, tcfg: TrainConfig, tx: Any,
) -> tuple[Params, Any, dict[str, jax.Array]]:  # fmt: skip
    """xs (k, 2B, T), ys = (targets (k, 2B, T), π_ref log-probs (k, 2B)); the mean DPO loss over the k·B pairs."""
    targets, ref = ys

    def loss_fn(p, x, y, r, key):
        logits = model_logits(p, frozen, x, cfg, tcfg, train=True, key=key, remat=tcfg.remat)
        terms = _pair_terms(model.sequence_logprobs(logits, y, IGNORE), r, tcfg.beta)
        return model.dpo_loss(*terms), model.dpo_metrics(*terms)

    def micro(carry, inputs):
        x, y, r, i = inputs
        (loss, metrics), g = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y, r, jax.random.fold_in(key, i))
        return jax.tree.map(jnp.add, carry, (g, loss, metrics)), None

    k = xs.shape[0]
    zero = jax.eval_shape(lambda: loss_fn(params, xs[0], targets[0], ref[0], key))
    init = (jax.tree.map(jnp.zeros_like, params), *jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), zero))
    sums, _ = jax.lax.scan(micro, init, (xs, targets, ref, jnp.arange(k)))
    grads, loss, metrics = jax.tree.map(lambda a: a / k, sums)  # every micro-batch holds B pairs: mean of means
    grad_norm = global_norm(grads, True)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(jnp.add, params, updates)
    return params, opt_state, {"loss": loss, "grad_norm": grad_norm, **metrics}


def dpo_eval_step(
    params: Params, x: jax.Array, y: tuple[jax.Array, jax.Array], frozen: Params | None = None, *,
    cfg: GPTConfig, tcfg: TrainConfig,
) -> dict[str, jax.Array]:  # fmt: skip
    """The policy's reply log-probs of one (2B, T) batch (dropout off), its DPO loss and metrics."""
    targets, ref = y
    logps = model.sequence_logprobs(model_logits(params, frozen, x, cfg, tcfg), targets, IGNORE)
    terms = _pair_terms(logps, ref, tcfg.beta)
    return {"logps": logps, "loss": model.dpo_loss(*terms), **model.dpo_metrics(*terms)}


class DpoSteps(Steps):
    """``Steps`` whose train and eval functions are DPO's; one device only."""

    def __init__(self, cfg: GPTConfig, spec: StepSpec) -> None:
        super().__init__(cfg, spec)
        tcfg = spec.tcfg
        self.train_fn = functools.partial(dpo_train_step, cfg=cfg, tcfg=tcfg, tx=self.tx)
        self.eval_fn = functools.partial(dpo_eval_step, cfg=cfg, tcfg=tcfg)
        self._train = jax.jit(self.train_fn, donate_argnums=(0, 1))
        self._eval = jax.jit(self.eval_fn)


@functools.lru_cache(maxsize=4)
def compiled_dpo_steps(cfg: GPTConfig, spec: StepSpec, mesh: str = "") -> DpoSteps:
    if mesh:
        raise ValueError(f"--task dpo runs on one device; drop --mesh {mesh}")
    return DpoSteps(cfg, spec)


def reference_logps(
    steps: DpoSteps, params: Params, lora: Params | None, pairs: list, rows: np.ndarray, block_size: int,
    batch_size: int = REF_BATCH,
) -> np.ndarray:  # fmt: skip
    """(n, 2): log π_ref(chosen), log π_ref(rejected) of the pairs ``rows`` with the given (starting) weights, NaN
    for the pairs the run never samples."""
    out = np.full((len(pairs), 2), np.nan, dtype=np.float32)
    for start in range(0, len(rows), batch_size):
        chunk = [int(i) for i in rows[start : start + batch_size]]
        n = len(chunk)
        chunk = chunk + chunk[:1] * (batch_size - n)  # one batch shape: one compilation
        x, y = pair_batch([pairs[i] for i in chunk], block_size)
        logps = np.asarray(steps.eval_step(params, x, (y, np.zeros(len(x), np.float32)), lora)["logps"])
        out[chunk[:n], 0], out[chunk[:n], 1] = logps[:n], logps[batch_size : batch_size + n]
    return out


def pair_samplers(
    steps: DpoSteps, state: Any, chat: dict[str, list], cfg: GPTConfig, tcfg: TrainConfig, run_dir: Path,
    resume: bool, log: Callable[[str], None], val_seed: int,
) -> tuple[PairSampler, PairSampler]:  # fmt: skip
    """(train, val) pair samplers with π_ref's log-probs: computed now for a fresh run, read back on resume.

    Only the pairs the run will sample get them (train: the batches of steps 0 … max_steps − 1; val: the fixed
    evaluation batches), since a pass over every pair can cost more than the DPO run itself."""
    samplers = {
        "train": PairSampler(chat["train"], None, cfg.block_size, tcfg.batch_size, tcfg.seed),
        "val": PairSampler(chat["val"], None, cfg.block_size, tcfg.batch_size, val_seed),
    }
    batches = {"train": tcfg.max_steps * tcfg.grad_accum, "val": tcfg.eval_batches}
    for split, sampler in samplers.items():
        path = run_dir / REF_LOGPS.format(split=split)
        rows = np.unique(np.concatenate([sampler.rows(k) for k in range(batches[split])]))
        if resume:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing; a DPO run keeps its reference log-probs there")
            sampler.ref_logps = np.load(path, allow_pickle=False)
            if sampler.ref_logps.shape != (len(chat[split]), 2):
                raise ValueError(f"{path}: holds {sampler.ref_logps.shape[0]} pairs but the data "
                                 f"{len(chat[split])}; the data changed since the run started")  # fmt: skip
            if np.isnan(sampler.ref_logps[rows]).any():
                raise ValueError(
                    f"--max_steps {tcfg.max_steps} reaches pairs whose reference log-probs this run never computed "
                    "(it started with fewer steps); start a new DPO run from the same --init_from instead"
                )
        else:
            log(f"π_ref: log-probs of {len(rows):,} {split} pairs (computed once, kept in {path.name})")
            sampler.ref_logps = reference_logps(steps, state.params, state.lora, chat[split], rows, cfg.block_size)
            np.save(path, sampler.ref_logps)
    return samplers["train"], samplers["val"]


def evaluate(steps: DpoSteps, params: Params, sampler: PairSampler, n_batches: int, lora: Params | None) -> dict:
    """Mean DPO loss and metrics over the fixed validation batches 0..n_batches-1."""
    sums: dict[str, float] = {}
    for i in range(n_batches):
        x, y = sampler.batch(i)
        out = steps.eval_step(params, x, y, lora)
        for name, value in out.items():
            if name != "logps":
                sums[name] = sums.get(name, 0.0) + float(value)
    means = {name: v / n_batches for name, v in sums.items()}
    return {"val_loss": means.pop("loss"), **{f"val_{k}": v for k, v in means.items()}}

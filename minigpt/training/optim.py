"""The optimiser: warmup + cosine learning rate, global-norm clipping, AdamW with a weight-decay mask.

g ← g · min(1, clip / ‖g‖₂)              global-norm clipping, once, on the accumulated gradient
θ ← AdamW(θ, g; lr(step), wd · mask)     decay only Linear weight matrices (``params.weight_decay_mask``)
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minigpt.params import Params, weight_decay_mask
from minigpt.training.config import TrainConfig


def learning_rate(step: Any, tcfg: TrainConfig) -> Any:
    """lr(s) = lr·(s+1)/W for s < W;  min_lr + ½(lr − min_lr)(1 + cos(π·(s−W)/(D−W))) up to D;  min_lr after.

    W = warmup_steps, D = decay_steps. Works on JAX scalars (inside Optax) and on Python ints (for logging,
    computed with NumPy so the training loop does not dispatch device work for it).
    """
    xp = np if isinstance(step, (int, np.integer)) else jnp
    W, D = tcfg.warmup_steps, max(tcfg.decay_steps, tcfg.warmup_steps + 1)
    s = xp.asarray(step, xp.float32)
    warm = tcfg.lr * (s + 1) / max(W, 1)
    progress = xp.clip((s - W) / (D - W), 0.0, 1.0)
    cosine = tcfg.min_lr + 0.5 * (tcfg.lr - tcfg.min_lr) * (1 + xp.cos(math.pi * progress))
    return xp.where(s < W, warm, cosine)


def global_norm(tree: Any, fused: bool = True) -> Any:
    """‖g‖₂ = √(Σ_leaves Σ g²) (``optax.tree.norm``).

    ``fused``: one reduction over all leaves laid end to end. XLA:CPU then runs one loop, where a sum per leaf
    costs two or three small kernels per leaf (≈150 of a ``baby`` step's ≈640). Not for sharded leaves: laying
    them end to end would gather every shard on every device; ``fused=False`` sums each leaf where it lives.
    """
    if not fused:
        return optax.tree.norm(tree)
    leaves = jax.tree.leaves(tree)
    dtype = jnp.result_type(jnp.float32, *leaves)  # at least float32; float64 stays float64
    flat = jnp.concatenate([jnp.ravel(leaf).astype(dtype) for leaf in leaves])  # (N,)
    return jnp.sqrt(jnp.sum(flat * flat))


def clip_by_global_norm(max_norm: float, fused: bool = True) -> optax.GradientTransformation:
    """``optax.clip_by_global_norm`` (same state, same update: g · c/‖g‖ when ‖g‖ ≥ c) with ``global_norm``."""
    base = optax.clip_by_global_norm(max_norm)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        del params
        norm = global_norm(updates, fused)
        # one scalar factor: a multiply XLA fuses into AdamW's loops (optax's per-element divide is a loop of its own)
        factor = jnp.where(norm < max_norm, 1.0, max_norm / norm)
        return jax.tree.map(lambda g: g * factor.astype(g.dtype), updates), state

    return optax.GradientTransformation(base.init, update)


def make_optimizer(tcfg: TrainConfig, params: Params, fused_norm: bool = True) -> optax.GradientTransformation:
    """``chain(clip_by_global_norm, adamw(lr(step), weight_decay, mask=weight_decay_mask))``.

    The state is optax's for that chain whatever ``fused_norm`` (see ``global_norm``) says.
    """
    adamw = optax.adamw(
        functools.partial(learning_rate, tcfg=tcfg),
        b1=tcfg.beta1,
        b2=tcfg.beta2,
        eps=tcfg.eps,
        weight_decay=tcfg.weight_decay,
        mask=weight_decay_mask(params),
    )
    return optax.chain(clip_by_global_norm(tcfg.grad_clip, fused_norm), adamw) if tcfg.grad_clip > 0 else adamw

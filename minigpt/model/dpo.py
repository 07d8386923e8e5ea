"""DPO, the JAX twin of ``minigpt.reference.dpo`` (formulas there):

    m = β [(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))],   L = mean softplus(−m)

The reference log-probs pass through ``stop_gradient``: π_ref is frozen even if a caller hands in values that
``jax.grad`` could differentiate, so only the policy's log-probs get a gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minigpt.model.gpt import token_nll


def sequence_logprobs(logits: jax.Array, targets: jax.Array, ignore_index: int = -1) -> jax.Array:
    """log π(y|x) = Σ_t log softmax(logits_t)[target_t] over the kept targets, per row: (B,)."""
    return -jnp.sum(token_nll(logits, targets, ignore_index), axis=-1)  # (B,)


def dpo_margins(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    ref_chosen_logps: jax.Array,
    ref_rejected_logps: jax.Array,
    beta: float,
) -> jax.Array:
    """m = β [(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l))] per pair (B,); π_ref frozen."""
    rc, rr = jax.lax.stop_gradient(ref_chosen_logps), jax.lax.stop_gradient(ref_rejected_logps)
    return beta * ((policy_chosen_logps - rc) - (policy_rejected_logps - rr))


def dpo_losses(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    ref_chosen_logps: jax.Array,
    ref_rejected_logps: jax.Array,
    beta: float,
) -> jax.Array:
    """−log σ(m) = softplus(−m) per pair (B,)."""
    m = dpo_margins(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return jax.nn.softplus(-m)


def dpo_loss(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    ref_chosen_logps: jax.Array,
    ref_rejected_logps: jax.Array,
    beta: float,
) -> jax.Array:
    """L = mean over pairs of −log σ(m), a 0-d array (``float(...)`` outside ``jit``)."""
    args = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return jnp.mean(dpo_losses(*args))


def dpo_metrics(
    policy_chosen_logps: jax.Array,
    policy_rejected_logps: jax.Array,
    ref_chosen_logps: jax.Array,
    ref_rejected_logps: jax.Array,
    beta: float,
) -> dict[str, jax.Array]:
    """reward_accuracy, reward_margin, logratio_chosen, logratio_rejected, as ``reference.dpo.dpo_metrics``."""
    m = dpo_margins(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return {
        "reward_accuracy": jnp.mean((m > 0).astype(m.dtype)),
        "reward_margin": jnp.mean(m),
        "logratio_chosen": jnp.mean(policy_chosen_logps - ref_chosen_logps),
        "logratio_rejected": jnp.mean(policy_rejected_logps - ref_rejected_logps),
    }

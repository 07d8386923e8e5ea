"""Direct preference optimisation (DPO): learn from pairs (a better reply y_w, a worse y_l) to one prompt x.

With the policy π_θ (the model being trained) and a frozen reference π_ref (the SFT model it starts from),

    m = β · [(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))]
    L = mean over pairs of −log σ(m) = softplus(−m)

where log π(y|x) is the reply's log-probability summed over its assistant tokens (``sequence_logprobs``).
β · (log π_θ − log π_ref) is the implicit *reward* of a reply: L pushes the chosen reply's reward above the
rejected one's, and β sets how far the policy may drift from π_ref for it. π_ref's log-probs are inputs,
computed once and never differentiated: only the policy's two log-probs get a gradient,

    ∂L/∂log π_θ(y_w|x) = −β σ(−m) / B,   ∂L/∂log π_θ(y_l|x) = +β σ(−m) / B.

At the start (π_θ = π_ref) m = 0, so L = log 2 and the gradient raises y_w and lowers y_l equally.
"""

from __future__ import annotations

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params
from minigpt.reference.functional import log_softmax, softmax
from minigpt.reference.model_backward import model_backward, model_forward
from minigpt.validation import check_targets


def sequence_logprobs(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -1) -> np.ndarray:
    """log π(y|x) = Σ_t log softmax(logits_t)[target_t] over the kept targets (≠ ignore_index), per row: (B,)."""
    keep = targets != ignore_index  # (B, T)
    logp = np.take_along_axis(log_softmax(logits, axis=-1), np.where(keep, targets, 0)[..., None], axis=-1)[..., 0]
    return np.sum(logp * keep, axis=-1)  # (B,)


def sequence_logprobs_backward(
    dlogps: np.ndarray, logits: np.ndarray, targets: np.ndarray, ignore_index: int = -1
) -> np.ndarray:
    """∂L/∂logits_{b,t} = dlogps_b · keep_{b,t} · (onehot(target_{b,t}) − softmax(logits_{b,t})): (B, T, V)."""
    keep = targets != ignore_index  # (B, T)
    onehot = np.arange(logits.shape[-1]) == np.where(keep, targets, 0)[..., None]  # (B, T, V)
    return (onehot - softmax(logits, axis=-1)) * (keep * np.asarray(dlogps)[:, None])[..., None]


def dpo_margins(
    policy_chosen_logps: np.ndarray,
    policy_rejected_logps: np.ndarray,
    ref_chosen_logps: np.ndarray,
    ref_rejected_logps: np.ndarray,
    beta: float,
) -> np.ndarray:
    """m = β [(log π_θ(y_w) − log π_ref(y_w)) − (log π_θ(y_l) − log π_ref(y_l))], per pair: (B,)."""
    pc, pr = np.asarray(policy_chosen_logps), np.asarray(policy_rejected_logps)
    rc, rr = np.asarray(ref_chosen_logps), np.asarray(ref_rejected_logps)
    if not pc.shape == pr.shape == rc.shape == rr.shape or pc.ndim != 1:
        raise ValueError(
            f"the four log-prob arrays must have one shape (B,), got {pc.shape}, {pr.shape}, {rc.shape}, {rr.shape}"
        )
    if not beta > 0:
        raise ValueError(f"beta must be > 0 (it scales the implicit reward), got {beta}")
    return beta * ((pc - rc) - (pr - rr))


def dpo_losses(
    policy_chosen_logps: np.ndarray,
    policy_rejected_logps: np.ndarray,
    ref_chosen_logps: np.ndarray,
    ref_rejected_logps: np.ndarray,
    beta: float,
) -> np.ndarray:
    """−log σ(m) = softplus(−m) = log(1 + e^{−m}) per pair (B,), computed as logaddexp(0, −m) (no overflow)."""
    m = dpo_margins(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return np.logaddexp(0.0, -m)


def dpo_loss(
    policy_chosen_logps: np.ndarray,
    policy_rejected_logps: np.ndarray,
    ref_chosen_logps: np.ndarray,
    ref_rejected_logps: np.ndarray,
    beta: float,
) -> float:
    """L = mean over pairs of −log σ(m) (see the module docstring), as a float."""
    args = (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return float(np.mean(dpo_losses(*args)))


def dpo_loss_backward(
    policy_chosen_logps: np.ndarray,
    policy_rejected_logps: np.ndarray,
    ref_chosen_logps: np.ndarray,
    ref_rejected_logps: np.ndarray,
    beta: float,
) -> tuple[np.ndarray, np.ndarray]:
    """(∂L/∂log π_θ(y_w), ∂L/∂log π_θ(y_l)) = (−β σ(−m) / B, +β σ(−m) / B); π_ref gets none (it is frozen)."""
    m = dpo_margins(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    s = np.exp(-np.logaddexp(0.0, m)) * beta / m.shape[0]  # β σ(−m) / B, (B,); σ(−m) = e^{−softplus(m)}
    return -s, s


def dpo_metrics(
    policy_chosen_logps: np.ndarray,
    policy_rejected_logps: np.ndarray,
    ref_chosen_logps: np.ndarray,
    ref_rejected_logps: np.ndarray,
    beta: float,
) -> dict[str, float]:
    """What DPO training logs: reward accuracy (share of pairs with r_w > r_l), reward margin mean(r_w − r_l),
    and how far the policy moved from π_ref, mean log π_θ − log π_ref on the chosen and on the rejected replies.
    The implicit reward is r = β (log π_θ − log π_ref)."""
    pc, pr = np.asarray(policy_chosen_logps), np.asarray(policy_rejected_logps)
    rc, rr = np.asarray(ref_chosen_logps), np.asarray(ref_rejected_logps)
    m = dpo_margins(pc, pr, rc, rr, beta)
    return {
        "reward_accuracy": float(np.mean(m > 0)),
        "reward_margin": float(np.mean(m)),
        "logratio_chosen": float(np.mean(pc - rc)),
        "logratio_rejected": float(np.mean(pr - rr)),
    }


def dpo_loss_and_grads(
    params: Params,
    chosen: tuple[np.ndarray, np.ndarray],
    rejected: tuple[np.ndarray, np.ndarray],
    ref_chosen_logps: np.ndarray,
    ref_rejected_logps: np.ndarray,
    cfg: GPTConfig,
    beta: float,
    ignore_index: int = -1,
) -> tuple[float, Params]:
    """(L, ∂L/∂θ) of DPO for the policy ``params``, by hand. ``chosen`` and ``rejected`` are (idx, targets)
    pairs of one shape (B, T), targets masked to the reply tokens as for SFT; the reference log-probs are given.

    One forward over the 2B rows [chosen; rejected]; dL/dlogp from ``dpo_loss_backward``, through
    ``sequence_logprobs_backward`` to the logits, then ``model_backward``.
    """
    (ci, ct), (ri, rt) = chosen, rejected
    if np.shape(ci) != np.shape(ri):
        raise ValueError(
            f"chosen and rejected batches must have one shape (B, T), got {np.shape(ci)} and {np.shape(ri)}"
        )
    idx, targets = np.concatenate([ci, ri]), np.concatenate([ct, rt])  # (2B, T)
    check_targets(targets, idx.shape, cfg, ignore_index, allow_all_ignored=True)
    logits, cache = model_forward(params, idx, cfg)
    logps = sequence_logprobs(logits, targets, ignore_index)  # (2B,)
    B = len(ci)
    args = (logps[:B], logps[B:], ref_chosen_logps, ref_rejected_logps, beta)
    d_chosen, d_rejected = dpo_loss_backward(*args)
    dlogits = sequence_logprobs_backward(np.concatenate([d_chosen, d_rejected]), logits, targets, ignore_index)
    return dpo_loss(*args), model_backward(dlogits.astype(logits.dtype), cache)

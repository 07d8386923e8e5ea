"""Checkers for lesson 03, the GPT forward pass and its loss: LayerNorm, the whole model, the masked mean NLL,
and the sequence log-likelihood.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.config import GPTConfig
from minigpt.params import map_params
from minigpt.reference import functional as F
from minigpt.reference import model as M
from minigpt.testing.checks.diagnosis import arrays, call, compare, describe, generator, run
from minigpt.testing.strategies import configs, seeds

# -- layer norm ------------------------------------------------------------------------------------


def check_layer_norm(fn: Callable[..., np.ndarray], max_examples: int = 50) -> None:
    """``fn(x, weight, bias, eps)`` must return (x − μ)/√(σ² + ε)·γ + β over the last axis (biased σ²)."""

    @st.composite
    def inputs(draw):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 8)))
        x = arrays(draw, shape) * 3 + 1
        g, b = arrays(draw, (shape[-1],)) + 1, arrays(draw, (shape[-1],))
        return x, g, b, draw(st.sampled_from([1e-5, 0.1, 1.0]))

    def prop(example):
        x, g, b, eps = example
        ins = {"x": x, "weight": g, "bias": b, "eps": eps}
        got = call(fn, "layer_norm", ins, x.copy(), g.copy(), b.copy(), eps)
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        compare(
            got,
            F.layer_norm(x, g, b, eps),
            ins,
            [
                (
                    "you used the unbiased variance (÷(C−1)); LayerNorm divides by C.",
                    lambda: (x - mu) / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps) * g + b,
                ),
                (
                    "ε belongs inside the square root: √(σ² + ε), not √σ² + ε.",
                    lambda: (x - mu) / (np.sqrt(var) + eps) * g + b,
                ),
                ("the gain γ (weight) and bias β were not applied.", lambda: (x - mu) / np.sqrt(var + eps)),
                (
                    "normalised over the wrong axis: statistics are taken over the last (channel) axis.",
                    lambda: (x - x.mean(0)) / np.sqrt(x.var(0) + eps) * g + b,
                ),
            ],
            what="layer_norm",
        )

    run(prop, inputs(), max_examples)


# -- whole model -----------------------------------------------------------------------------------


def _gpt_variant(params, idx, cfg, *, skip_attn_residual=False, skip_mlp_residual=False, no_ln_f=False, no_wpe=False):
    x = params["wte"]["weight"][idx] + (0 if no_wpe else params["wpe"]["weight"][: idx.shape[1]])
    for p in params["h"]:
        a = F.multi_head_attention(
            F.layer_norm(x, p["ln_1"]["weight"], p["ln_1"]["bias"], cfg.layer_norm_eps), p["attn"], cfg.n_head
        )
        x = a if skip_attn_residual else x + a
        m = F.mlp(F.layer_norm(x, p["ln_2"]["weight"], p["ln_2"]["bias"], cfg.layer_norm_eps), p["mlp"])
        x = m if skip_mlp_residual else x + m
    if not no_ln_f:
        x = F.layer_norm(x, params["ln_f"]["weight"], params["ln_f"]["bias"], cfg.layer_norm_eps)
    return x @ params["wte"]["weight"].T


def _perturbed(cfg: GPTConfig, seed: int) -> dict:
    params = M.init_params(cfg, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed + 1)

    return map_params(lambda a: a + 0.1 * rng.standard_normal(a.shape), params)


def check_gpt_forward(fn: Callable[..., np.ndarray], max_examples: int = 25) -> None:
    """``fn(params, idx, cfg)`` must return the GPT logits (B, T, V) (see reference.forward)."""

    @st.composite
    def inputs(draw):
        cfg = draw(configs(max_layers=2, max_heads=2, max_head_size=4, max_vocab=20, max_block=6, bias=True))
        cfg = cfg.replace(block_size=max(cfg.block_size, 2), n_embd=max(cfg.n_embd, 2 * cfg.n_head))
        T = draw(st.integers(2, cfg.block_size))
        idx = generator(draw).integers(0, cfg.vocab_size, (draw(st.integers(1, 2)), T))
        return _perturbed(cfg, draw(seeds())), idx, cfg

    def prop(example):
        params, idx, cfg = example
        ins = {"idx": idx, "cfg": cfg, "params": params}

        got = call(fn, "gpt_forward", ins, map_params(np.copy, params), idx.copy(), cfg)
        compare(
            got,
            M.forward(params, idx, cfg),
            ins,
            [
                (
                    "missing residual connection around attention: x = x + attn(ln_1(x)).",
                    lambda: _gpt_variant(params, idx, cfg, skip_attn_residual=True),
                ),
                (
                    "missing residual connection around the MLP: x = x + mlp(ln_2(x)).",
                    lambda: _gpt_variant(params, idx, cfg, skip_mlp_residual=True),
                ),
                (
                    "the final LayerNorm ln_f is missing before the lm head.",
                    lambda: _gpt_variant(params, idx, cfg, no_ln_f=True),
                ),
                (
                    "the position embedding wpe is missing: x = wte[idx] + wpe[:T].",
                    lambda: _gpt_variant(params, idx, cfg, no_wpe=True),
                ),
            ],
            what="gpt_forward",
            rtol=1e-6,
            atol=1e-8,
        )
        # causality, separately: changing the last token must not move earlier logits
        changed = idx.copy()
        changed[:, -1] = (changed[:, -1] + 1) % cfg.vocab_size
        again = np.asarray(call(fn, "gpt_forward", ins, map_params(np.copy, params), changed, cfg))
        if not np.allclose(again[:, :-1], np.asarray(got)[:, :-1], rtol=1e-9, atol=1e-12):
            raise AssertionError("gpt_forward: position t attends to the future.\n" + describe(ins))

    run(prop, inputs(), max_examples)


# -- loss ------------------------------------------------------------------------------------------


def check_loss(fn: Callable[..., Any], max_examples: int = 50) -> None:
    """``fn(logits, targets, ignore_index=-1)`` must return the mean of −log softmax(logits)[target]
    over the targets that are not ``ignore_index`` (see reference.cross_entropy)."""

    @st.composite
    def inputs(draw):
        B, T, V = draw(st.integers(1, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 7))
        logits = arrays(draw, (B, T, V), draw(st.sampled_from([1.0, 3.0, 100.0])))
        targets = generator(draw).integers(0, V, (B, T))
        ignore = generator(draw).random((B, T)) < draw(st.sampled_from([0.0, 0.3]))
        ignore.flat[0] = False
        return logits, np.where(ignore, -1, targets)

    def prop(example):
        logits, targets = example
        ins = {"logits": logits, "targets": targets}
        got = call(fn, "loss", ins, logits.copy(), targets.copy(), -1)
        keep = targets != -1
        logp = F.log_softmax(logits)
        nll = -np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], -1)[..., 0] * keep
        compare(
            np.asarray(got, dtype=np.float64).reshape(()),
            np.asarray(M.cross_entropy(logits, targets, -1)),
            ins,
            [
                (
                    "the loss is the NEGATIVE log-likelihood: you forgot the minus sign.",
                    lambda: -nll.sum() / keep.sum(),
                ),
                ("you summed the token losses; take the mean over the non-ignored tokens.", lambda: nll.sum()),
                (
                    "positions with target == ignore_index were counted in the mean; divide by the number of kept "
                    "tokens only.",
                    lambda: nll.sum() / nll.size,
                ),
                (
                    "softmax taken over the wrong axis: the distribution is over the vocabulary (last axis).",
                    lambda: _loss_wrong_axis(logits, targets, keep),
                ),
            ],
            what="loss",
        )

    def _loss_wrong_axis(logits, targets, keep):
        logp = F.log_softmax(logits, axis=1)
        return -(np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], -1)[..., 0] * keep).sum() / keep.sum()

    run(prop, inputs(), max_examples)


def check_sequence_log_likelihood(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], max_examples: int = 25) -> None:
    """``fn(logits, idx)`` with logits (B, T, V) from a forward over idx (B, T) returns, per row (B,),
    log P(x_2 … x_T | x_1) = Σ_{t=1}^{T-1} log softmax(logits[:, t-1])[idx[:, t]]: position t−1 predicts token t."""

    @st.composite
    def inputs(draw):
        B, T, V = draw(st.integers(1, 3)), draw(st.integers(2, 6)), draw(st.integers(2, 7))
        logits = arrays(draw, (B, T, V), draw(st.sampled_from([1.0, 3.0, 50.0])))
        return logits, generator(draw).integers(0, V, (B, T))

    def prop(example):
        logits, idx = example
        ins = {"logits": logits, "idx": idx}
        got = np.asarray(call(fn, "sequence_log_likelihood", ins, logits.copy(), idx.copy()))
        logp = F.log_softmax(logits)
        picked = np.take_along_axis(logp[:, :-1], idx[:, 1:, None], -1)[..., 0]  # (B, T-1)
        same = np.take_along_axis(logp, idx[..., None], -1)[..., 0]  # logits[t] scored on token t: no shift
        compare(
            got,
            picked.sum(-1),
            ins,
            [
                (
                    "no shift: the logits at position t predict the NEXT token idx[t+1]; score logits[:, :-1] "
                    "against idx[:, 1:].",
                    lambda: same.sum(-1),
                ),
                (
                    "no shift, and the last position was scored too: use logits[:, :-1] against idx[:, 1:].",
                    lambda: same[:, 1:].sum(-1),
                ),
                (
                    "that is the mean over positions; the log-likelihood of a sequence is the SUM.",
                    lambda: picked.mean(-1),
                ),
                ("you summed probabilities; sum the LOG-probabilities (log softmax).", lambda: np.exp(picked).sum(-1)),
                ("wrong sign: a log-likelihood is ≤ 0 (this is the negative log-likelihood).", lambda: -picked.sum(-1)),
                (
                    "you returned one number for the batch; return one log-likelihood per row, shape (B,).",
                    lambda: picked.sum(),
                ),
            ],
            what="sequence_log_likelihood",
        )

    run(prop, inputs(), max_examples)

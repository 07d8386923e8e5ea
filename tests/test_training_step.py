"""minigpt.training.step: the compiled step against independent computations, on a 1×1 mesh.

Loss by the NumPy reference, gradient by ``nnx.grad`` of the Flax module, update by a float64 NumPy AdamW.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from train_data import CFG, CFG0, jparams, tcfg_for

from minigpt import GPT
from minigpt import reference as ref
from minigpt.params import flatten_params, map_params, unflatten_params, weight_decay_mask
from minigpt.training.config import TrainConfig
from minigpt.training.step import (
    StepSpec,
    compiled_steps,
    cpu_compiler_options,
    dropout_key,
    init_params,
    nll_sum,
)


def test_nll_sum_matches_float64_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5, 7)).astype(np.float32) * 3
    targets = rng.integers(0, 7, size=(3, 5))
    targets[0, :2] = -1
    s, n = nll_sum(jnp.asarray(logits), jnp.asarray(targets))
    l64 = logits.astype(np.float64)
    logp = l64 - np.log(np.exp(l64 - l64.max(-1, keepdims=True)).sum(-1, keepdims=True)) - l64.max(-1, keepdims=True)
    expected = -sum(logp[b, t, targets[b, t]] for b in range(3) for t in range(5) if targets[b, t] != -1)
    assert int(n) == 13
    np.testing.assert_allclose(float(s), expected, rtol=1e-5)


def numpy_adamw_step(params, grads, tcfg: TrainConfig):
    """Independent first AdamW step (step 0) in float64 with global-norm clipping and the decay mask."""
    flat_p = {k: np.asarray(v, np.float64) for k, v in flatten_params(params).items()}
    flat_g = {k: np.asarray(v, np.float64) for k, v in flatten_params(grads).items()}
    mask = flatten_params(weight_decay_mask(params))
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in flat_g.values()))
    scale = min(1.0, tcfg.grad_clip / norm) if tcfg.grad_clip > 0 else 1.0
    lr = tcfg.lr * 1 / max(tcfg.warmup_steps, 1) if tcfg.warmup_steps > 0 else tcfg.lr
    out = {}
    for k, p in flat_p.items():
        g = flat_g[k] * scale
        m = (1 - tcfg.beta1) * g / (1 - tcfg.beta1)  # bias-corrected first moment after one step
        v = (1 - tcfg.beta2) * g * g / (1 - tcfg.beta2)
        update = m / (np.sqrt(v) + tcfg.eps) + (tcfg.weight_decay * p if mask[k] else 0.0)
        out[k] = p - lr * update
    return out, norm


def nnx_grad_of_model_loss(params, x, y):
    """∇ GPT.loss by ``nnx.grad`` on the Flax module itself, flattened to the layout's dotted names."""
    from flax import nnx

    grad_fn = nnx.jit(nnx.grad(lambda m, x, y: m.loss(x, y)))
    state = grad_fn(GPT.from_params(params, CFG0), jnp.asarray(x), jnp.asarray(y))
    flat = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = np.asarray(node)

    walk(nnx.to_pure_dict(state), "")
    return unflatten_params(flat)


def test_grad_accumulation_equals_big_batch_and_numpy_adamw():
    """k micro-batches with unequal ignored-token counts ≡ one batch of k× size (clipping active).

    The accumulated step is checked against the big batch computed independently: its loss by
    ``GPT.loss``, its gradient by ``jax.grad`` of ``GPT.loss``, the update by a float64 NumPy AdamW.
    """
    k, B, T = 3, 2, CFG0.block_size
    rng = np.random.default_rng(2)
    x = rng.integers(0, CFG0.vocab_size, size=(k * B, T)).astype(np.int32)
    y = rng.integers(0, CFG0.vocab_size, size=(k * B, T)).astype(np.int32)
    y[0, :9] = -1  # micro-batch 0 keeps fewer tokens than the others
    y[5, 3:] = -1
    tcfg = TrainConfig(lr=1e-2, warmup_steps=4, weight_decay=0.5, grad_clip=0.05, grad_accum=k, progress=False)
    params = jparams(init_params(CFG0, seed=3))
    acc = compiled_steps(CFG0, StepSpec.of(tcfg))
    p_acc, _, m_acc = acc.train_step(
        jax.tree.map(jnp.copy, params), acc.tx.init(params), x.reshape(k, B, T), y.reshape(k, B, T), dropout_key(0)
    )  # a copy: the step donates (consumes) its params

    p64 = map_params(lambda a: np.asarray(a, np.float64), params)
    assert float(m_acc["loss"]) == pytest.approx(float(ref.loss(p64, x, y, CFG0)), rel=1e-5)
    grads = nnx_grad_of_model_loss(init_params(CFG0, seed=3), x, y)
    expected, norm = numpy_adamw_step(params, grads, tcfg)
    assert norm > 5 * tcfg.grad_clip  # clipping really happened
    assert float(m_acc["grad_norm"]) == pytest.approx(norm, rel=1e-5)
    # Adam's first step is ≈ lr·g/|g|: where |g| is near eps, float rounding of g moves the update, so
    # parameters are compared to 1e-3 of the step size (lr/warmup = 2.5e-3); a wrong clip or loss scale
    # (nanoGPT #168) or a wrong decay mask moves them by far more.
    step_size = tcfg.lr / tcfg.warmup_steps
    for name, a in flatten_params(p_acc).items():
        np.testing.assert_allclose(a, expected[name], rtol=0, atol=1e-3 * step_size, err_msg=name)


@pytest.mark.slow
def test_remat_plain_kernels_and_bfloat16_match_plain_float32(tmp_path):
    """One step from the same state: remat ≡ plain kernels ≡ fast kernels (the default; same dropout masks);
    bfloat16 compute ≈ float32."""
    # AdamW's first update is lr·g/(|g| + eps): for a gradient element within rounding of eps (1e-8) it swings
    # by up to the whole step when g moves by one ulp, so remat's or the plain kernels' reordered sums could
    # not be compared there (one bias element of 96: 1.9e-6 against 1.5e-6 allowed). With eps = 1e-4 that
    # element's update is ∝ g and the comparison measures the gradients, not the conditioning of the divide.
    base = tcfg_for(tmp_path, tmp_path, eps=1e-4)
    rng = np.random.default_rng(4)
    xs = rng.integers(0, CFG.vocab_size, size=(base.grad_accum, base.batch_size, CFG.block_size)).astype(np.int32)
    ys = np.roll(xs, -1, axis=2)
    params = jparams(init_params(CFG, seed=5))
    key = dropout_key(7)

    def one_step(tcfg, key=key):
        steps = compiled_steps(CFG, StepSpec.of(tcfg))
        new, _, m = steps.train_step(jax.tree.map(jnp.copy, params), steps.tx.init(params), xs, ys, key)
        return {k: np.asarray(v) for k, v in flatten_params(new).items()}, float(m["loss"]), float(m["grad_norm"])

    p32, l32, n32 = one_step(base)
    pre, lre, nre = one_step(base.replace(remat=True))
    ppk, lpk, npk = one_step(base.replace(fast=False))
    assert base.fast
    p16, l16, n16 = one_step(base.replace(compute_dtype="bfloat16"))
    step_size = base.lr / base.warmup_steps
    # remat recomputes the same operations with the same dropout masks: equal up to float rounding
    assert lre == pytest.approx(l32, rel=1e-6) and nre == pytest.approx(n32, rel=1e-5)
    for name, a in pre.items():
        np.testing.assert_allclose(a, p32[name], rtol=0, atol=1e-3 * step_size, err_msg=name)
    assert lpk == pytest.approx(l32, rel=1e-6) and npk == pytest.approx(n32, rel=1e-5)
    for name, a in ppk.items():
        np.testing.assert_allclose(a, p32[name], rtol=0, atol=1e-3 * step_size, err_msg=name)
    # bfloat16 compute (8-bit mantissa): loss within 1 %, gradient norm within 5 %, master weights float32
    assert l16 == pytest.approx(l32, rel=1e-2) and n16 == pytest.approx(n32, rel=5e-2)
    assert all(a.dtype == np.float32 for a in p16.values())
    old = {k: np.asarray(v) for k, v in flatten_params(params).items()}
    d16 = np.concatenate([(p16[k] - old[k]).ravel() for k in old])
    d32 = np.concatenate([(p32[k] - old[k]).ravel() for k in old])
    assert d16 @ d32 / (np.linalg.norm(d16) * np.linalg.norm(d32)) > 0.9  # the same update direction
    # dropout is live: another key gives another loss
    assert one_step(base, dropout_key(8))[1] != l32


def test_one_device_is_a_one_by_one_mesh_and_state_stays_on_it(tmp_path):
    steps = compiled_steps(CFG, StepSpec.of(tcfg_for(tmp_path, tmp_path)))
    assert dict(steps.mesh.shape) == {"data": 1, "fsdp": 1, "model": 1}
    params = steps.place_params(init_params(CFG, 0))
    opt_state = steps.init_opt_state(params)
    xs = np.random.default_rng(0).integers(0, CFG.vocab_size, size=(2, 4, CFG.block_size)).astype(np.int32)
    params, opt_state, out = steps.train_step(params, opt_state, xs, np.roll(xs, -1, 2), dropout_key(0))
    for leaf in jax.tree.leaves((params, opt_state)):
        assert isinstance(leaf.sharding, NamedSharding) and leaf.sharding.mesh == steps.mesh
    assert math.isfinite(float(out["loss"])) and float(out["grad_norm"]) > 0
    # arrays made outside the mesh (jnp.asarray, tx.init) are moved into its layout, not compiled for again
    compiles = []

    def on_event(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(duration)

    plain = jparams(init_params(CFG, 1))
    plain_opt, ys, key = steps.tx.init(plain), np.roll(xs, -1, 2), dropout_key(0)
    jax.block_until_ready((plain, plain_opt))
    jax.monitoring.register_event_duration_secs_listener(on_event)
    try:
        float(steps.train_step(plain, plain_opt, xs, ys, key)[2]["loss"])
    finally:
        jax.monitoring.unregister_event_duration_listener(on_event)
    assert compiles == []
    # on a CPU the fast path also asks XLA for multi-threaded batched dots (when this jaxlib knows the option)
    options = cpu_compiler_options()
    assert options is None or options == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

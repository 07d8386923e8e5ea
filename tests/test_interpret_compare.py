"""minigpt.interpret.compare: one planted mistake in one layer is named by block and sublayer; correct twins agree.

The second implementation is written here from the reference's pieces, one block at a time, with a mistake that
can be planted in one chosen block: a wrong LayerNorm ε, q and k swapped, RoPE positions off by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt.interpret import capture
from minigpt.interpret.compare import compare_layers, describe
from minigpt.reference import functional as F
from minigpt.reference.hooks import scoped, see
from minigpt.reference.model import embed, lm_head
from minigpt.testing.strategies import configs, seeds
from tests.test_interpret_capture import noisy_params


def swap_qk(attn: dict, cfg: GPTConfig) -> dict:
    """c_attn with its query and key columns exchanged (H = H_kv), as if the code split [K | Q | V]."""
    C = cfg.n_head * cfg.head_size
    swap = lambda a: np.concatenate([a[..., C : 2 * C], a[..., :C], a[..., 2 * C :]], axis=-1)  # noqa: E731
    return {**attn, "c_attn": {k: swap(v) for k, v in attn["c_attn"].items()}}


def block(x, p, cfg, capture, mistake=None):
    x = see(capture, "resid_pre", x)
    eps = 1e-2 if mistake == "eps" else cfg.layer_norm_eps
    h = see(capture, "ln_1.out", F.norm(x, p["ln_1"], cfg.norm, eps))
    attn = swap_qk(p["attn"], cfg) if mistake == "qk" else p["attn"]
    T = x.shape[1]
    positions = (np.arange(T) + (1 if mistake == "rope" else 0)) if cfg.pos == "rope" else None
    a = F.multi_head_attention(
        h, attn, cfg.n_head, n_kv_head=cfg.n_kv_head, positions=positions, rope_theta=cfg.rope_theta,
        capture=scoped(capture, "attn."),
    )  # fmt: skip
    x = see(capture, "resid_mid", x + a)
    h = see(capture, "ln_2.out", F.norm(x, p["ln_2"], cfg.norm, eps))
    return see(capture, "resid_post", x + F.mlp(h, p["mlp"], capture=scoped(capture, "mlp.")))


def planted(params, idx, cfg, layer=None, mistake=None) -> dict:
    """A capture of the model with ``mistake`` in block ``layer`` only (none: a second correct implementation)."""
    acts = {}
    x = embed(params, idx, cfg)
    for i, p in enumerate(params["h"]):
        x = block(x, p, cfg, scoped(acts, f"h.{i}."), mistake if i == layer else None)
    h = see(acts, "ln_f.out", F.norm(x, params["ln_f"], cfg.norm, cfg.layer_norm_eps))
    acts["logits"] = lm_head(h, params, cfg)
    return acts


def drawn(cfg_strategy):
    return st.tuples(cfg_strategy, seeds())


def run(cfg, seed, layer, mistake):
    params = noisy_params(cfg, seed)
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (2, cfg.block_size))
    return compare_layers(planted(params, idx, cfg, layer, mistake), capture(params, idx, cfg), rtol=1e-7, atol=1e-9)


@settings(max_examples=10)
@given(drawn(configs(llama=True).map(lambda c: c.replace(n_layer=3, norm="layernorm"))))
def test_a_wrong_layernorm_eps_in_block_2_is_named(case):
    report = run(*case, layer=2, mistake="eps")
    assert report.first_divergence == "h.2.ln_1.out"
    assert all(r.passed for r in report.rows[: [r.name for r in report.rows].index("h.2.ln_1.out")])


@settings(max_examples=10)
@given(drawn(configs(llama=True, max_layers=3).map(lambda c: c.replace(n_layer=max(2, c.n_layer), n_kv_head=None))))
def test_q_and_k_swapped_in_block_1_are_named(case):
    assert run(*case, layer=1, mistake="qk").first_divergence == "h.1.attn.q"


@settings(max_examples=10)
@given(drawn(configs(llama=True).filter(lambda c: c.pos == "rope" and c.block_size > 1)))
def test_rope_positions_off_by_one_in_block_0_are_named(case):
    """Shifting every position leaves q·k (hence the weights and all later activations) unchanged: only the
    rotated q and k themselves show it, which is why the capture records them after RoPE."""
    report = run(*case, layer=0, mistake="rope")
    assert report.first_divergence == "h.0.attn.q"
    assert not next(r for r in report.rows if r.name == "h.0.attn.k").passed


@settings(max_examples=10)
@given(drawn(configs(llama=True)))
def test_two_correct_implementations_report_no_divergence(case):
    report = run(*case, layer=None, mistake=None)
    assert report.first_divergence is None and report.passed and not report.missing
    assert "all" in report.table().splitlines()[-1]


@settings(max_examples=6)
@given(drawn(configs(llama=True)))
def test_the_reference_and_the_jax_model_agree_layer_by_layer(x64, case):
    cfg, seed = case
    params = noisy_params(cfg, seed)
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (2, cfg.block_size))
    report = compare_layers(capture(params, idx, cfg, backend="jax"), capture(params, idx, cfg), rtol=1e-9, atol=1e-12)
    assert report.first_divergence is None, report.table()


def test_the_report_names_shapes_nans_and_missing_names():
    a = {"h.0.resid_pre": np.ones((1, 2)), "h.0.attn.q": np.ones(3), "x": np.array([np.nan, 1.0]), "only_a": 0}
    b = {"h.0.resid_pre": np.ones((1, 2)), "h.0.attn.q": np.ones(4), "x": np.array([np.nan, 1.0]), "only_b": 0}
    report = compare_layers(a, b)
    assert [r.name for r in report.rows] == ["h.0.resid_pre", "h.0.attn.q", "x"]
    assert report.first_divergence == "h.0.attn.q" and math.isinf(report.rows[1].max_abs)
    assert report.rows[2].passed  # NaN where both have NaN is agreement
    assert report.missing == ["only_a", "only_b"]
    table = report.table()
    assert "first divergence: h.0.attn.q (block 0, attn.q)" in table and "not compared: only_a, only_b" in table
    assert report.to_dict()["rows"][1]["max_abs"] is None
    assert describe("ln_f.out") == "ln_f.out"
    with pytest.raises(ValueError, match="share no activation name"):
        compare_layers({"a": 1}, {"b": 1})

"""``minigpt verify``: passes on the real code, fails (non-zero exit, FAIL rows) when a component is wrong."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from minigpt import cli
from minigpt.commands import verify
from minigpt.reference import functional as F


def erf_gelu(x):  # the exact GELU: close to GPT-2's tanh form, but not the same function
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))).astype(x.dtype)


@pytest.mark.slow
def test_cli_json_report_passes_and_covers_both_dtypes(capsys):
    assert cli.main(["verify", "--configs", "1", "--seed", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    rows = report["rows"]
    checks = {(r["check"], r["dtype"]) for r in rows}
    for name in (
        "softmax",
        "layer_norm",
        "multi_head_attention",
        "block",
        "logits (jit)",
        "loss (jit)",
        "grad: hand vs jax.grad",
        "kv cache (numpy)",
        "kv cache (jax)",
    ):
        assert {(name, "float32"), (name, "float64")} <= checks
    assert ("grad: jax.grad vs FD", "float64") in checks
    assert ("loss = causal log-lik.", "float64") in checks
    f64 = [r for r in rows if r["dtype"] == "float64" and r["check"] != "grad: jax.grad vs FD"]
    assert max(r["max_abs"] for r in f64) < 1e-9  # float64 agreement is to rounding, not just within tolerance


def test_wrong_gelu_in_the_reference_fails_with_nonzero_exit(monkeypatch, capsys):
    monkeypatch.setattr(F, "gelu", erf_gelu)
    monkeypatch.setattr(verify, "CHECKS", [verify.check_components])  # the rows that see GELU, to save time
    assert verify.main(["--configs", "1", "--seed", "3"]) == 1
    out = capsys.readouterr().out
    failed = {line.split("  ")[0].strip() for line in out.splitlines() if line.endswith("FAIL")}
    assert {"gelu", "mlp", "block"} <= failed and "softmax" not in failed
    assert "FAILED" in out


def test_a_leaky_causal_mask_is_caught_by_the_log_likelihood_row(monkeypatch):
    # a mask that lets position t see t+1: batched forward and per-prefix forward now disagree
    monkeypatch.setattr(
        F, "causal_mask", lambda T, dtype=np.float32: np.triu(np.full((T, T), -np.inf), 2).astype(dtype)
    )
    rows = verify.run(1, seed=1, checks=[verify.check_log_likelihood])
    assert rows and not any(r.passed for r in rows)


def test_row_compares_elementwise_with_rtol_and_atol():
    case = verify.Case(verify.random_config(np.random.default_rng(0)), np.dtype(np.float64), {}, None, None, None, None)
    ok = case.row("x", [1.0 + 5e-10, 0.0], [1.0, 0.0])
    bad = case.row("x", [1.0, 1e-10], [1.0, 0.0])  # 1e-10 > atol 1e-11 where the truth is 0
    nan = case.row("x", [np.nan], [1.0])
    assert ok.passed and not bad.passed and not nan.passed and math.isinf(nan.max_abs)
    with pytest.raises(ValueError, match="shapes differ"):
        case.row("x", [1.0, 2.0], [1.0])


def test_bad_arguments_are_rejected():
    with pytest.raises(SystemExit):
        verify.main(["--configs", "0"])
    with pytest.raises(ValueError, match="at least 1"):
        verify.run(0)


def test_a_broken_hand_written_gradient_fails_its_row(monkeypatch):
    from minigpt.reference import functional_backward as FB

    right = FB.layer_norm_backward

    def no_mean_term(dy, cache):  # LayerNorm backward that treats μ as a constant
        dx, dw, db = right(dy, cache)
        g = dy * cache[1]
        x = cache[0]
        return dx + g.mean(-1, keepdims=True) / np.sqrt(x.var(-1, keepdims=True) + cache[3]), dw, db

    monkeypatch.setattr(FB, "layer_norm_backward", no_mean_term)  # norm_backward looks it up at call time
    rows = verify.run(1, seed=2, checks=[verify.check_hand_written_grads])
    grad_rows = [r for r in rows if r.check == "grad: hand vs jax.grad"]
    assert len(grad_rows) == 2 and not any(r.passed for r in grad_rows)
    assert all(r.passed for r in rows if r.check == "loss of loss_and_grads")  # the forward is untouched


def test_a_cache_that_stores_keys_as_values_fails_the_numpy_row(monkeypatch):
    from minigpt.reference import kv_cache

    def keys_as_values(self, layer, k, v):  # returns this step right, but caches K where V belongs
        if self.k[layer] is not None:
            k = np.concatenate([self.k[layer], k], axis=2)
            v = np.concatenate([self.v[layer], v], axis=2)
        self.k[layer], self.v[layer] = k, k
        return k, v

    monkeypatch.setattr(kv_cache.ReferenceKVCache, "append", keys_as_values)
    rows = {(r.check, r.dtype): r for r in verify.run(1, seed=2, checks=[verify.check_kv_cache])}
    assert not rows["kv cache (numpy)", "float32"].passed and not rows["kv cache (numpy)", "float64"].passed
    assert rows["kv cache (jax)", "float32"].passed and rows["kv cache (jax)", "float64"].passed


def test_a_cache_mask_that_hides_the_past_fails_both_cache_rows(monkeypatch):
    from minigpt.model import cache
    from minigpt.reference import kv_cache

    def hides_the_past(i, j, start, xp=np):
        return j[None, None, :] == i[None, :, None]

    monkeypatch.setattr(kv_cache, "attention_allowed", hides_the_past)  # the NumPy cache's name for the rule
    monkeypatch.setattr(cache, "attention_allowed", hides_the_past)  # and the JAX model's
    rows = verify.run(1, seed=2, checks=[verify.check_kv_cache])
    assert rows and not any(r.passed for r in rows)

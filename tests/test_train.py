"""Training: the step against independent computations, exact resume, checkpoints, NaN stop, CLI errors.

Everything uses the ``tiny`` model shape on a synthetic data directory; runs share compiled steps
(``compiled_steps`` caches them per config), so the whole file stays within a few tens of seconds.
"""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt import checkpoint as ckpt
from minigpt import reference as ref
from minigpt.params import flatten_params, map_params, unflatten_params, validate_params, weight_decay_mask
from minigpt.train import (
    StepSpec,
    TrainConfig,
    compiled_steps,
    dropout_key,
    init_params,
    learning_rate,
    load_run,
    main,
    read_metrics,
    token_nll,
    train,
)

# One shape and one step spec for all whole-run tests, so they share a single compilation.
CFG = GPTConfig.preset("tiny", n_layer=1, dropout=0.1)  # V=64, T=16, L=1, C=32
CFG0 = CFG.replace(dropout=0.0)  # for exact comparisons with a bigger batch (dropout masks differ)


def write_data(d: Path, vocab: int = 64, n_train: int = 3000, n_val: int = 400, seed: int = 0) -> Path:
    """A data directory in the layout of ``minigpt prepare``: a repeated random phrase (learnable)."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    phrase = rng.integers(0, vocab, size=37)
    stream = np.resize(phrase, n_train + n_val).astype(np.uint16)
    np.save(d / "train.npy", stream[:n_train])
    np.save(d / "val.npy", stream[n_train:])
    (d / "meta.json").write_text(json.dumps({"vocab_size": vocab}))
    return d


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def tcfg_for(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(
        data=str(data),
        out=str(out),
        preset="tiny",
        batch_size=4,
        grad_accum=2,
        max_steps=6,
        lr=3e-3,
        min_lr=3e-4,
        warmup_steps=2,
        lr_decay_steps=6,
        eval_interval=3,
        eval_batches=2,
        log_interval=1,
        ckpt_interval=3,
        progress=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def jparams(params):
    return jax.tree.map(jnp.asarray, params)


# -- the learning-rate schedule and the loss -----------------------------------------------------
@given(step=st.integers(0, 200), warmup=st.integers(0, 50), decay=st.integers(1, 150))
def test_learning_rate_matches_closed_form(step, warmup, decay):
    tcfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=warmup, lr_decay_steps=decay, progress=False)
    D = max(decay, warmup + 1)
    if step < warmup:
        expected = 1e-3 * (step + 1) / warmup
    elif step >= D:
        expected = 1e-4
    else:
        expected = 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * (step - warmup) / (D - warmup)))
    assert float(learning_rate(step, tcfg)) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert float(learning_rate(jnp.int32(step), tcfg)) == pytest.approx(expected, rel=1e-5, abs=1e-9)  # in Optax


def test_token_nll_matches_float64_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 5, 7)).astype(np.float32) * 3
    targets = rng.integers(0, 7, size=(3, 5))
    targets[0, :2] = -1
    s, n = token_nll(jnp.asarray(logits), jnp.asarray(targets))
    l64 = logits.astype(np.float64)
    logp = l64 - np.log(np.exp(l64 - l64.max(-1, keepdims=True)).sum(-1, keepdims=True)) - l64.max(-1, keepdims=True)
    expected = -sum(logp[b, t, targets[b, t]] for b in range(3) for t in range(5) if targets[b, t] != -1)
    assert int(n) == 13
    np.testing.assert_allclose(float(s), expected, rtol=1e-5)


# -- one optimizer step --------------------------------------------------------------------------
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


def test_remat_plain_kernels_and_bfloat16_match_plain_float32(data_dir, tmp_path):
    """One step from the same state: remat ≡ plain kernels ≡ fast kernels (the default; same dropout masks);
    bfloat16 compute ≈ float32."""
    base = tcfg_for(data_dir, tmp_path)  # the whole-run tests' spec: its compiled step is shared
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
    ppk, lpk, npk = one_step(base.replace(fast_kernels=False))
    assert base.fast_kernels
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


# -- whole runs ----------------------------------------------------------------------------------
def losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if "loss" in r]


def test_resume_after_sigterm_is_bit_exact(tmp_path, data_dir, capsys):
    """(train 2N) == (train, SIGTERM after N, resume, train to 2N): same losses, same final parameters."""
    cfg = CFG  # with dropout: the dropout key must be restored too
    full = train(cfg, tcfg_for(data_dir, tmp_path / "full"))
    assert full["status"] == "done" and full["step"] == 6

    def sigterm_at_3(step, record):
        if step == 3:
            signal.raise_signal(signal.SIGTERM)

    t = tcfg_for(data_dir, tmp_path / "split", ckpt_interval=100)
    first = train(cfg, t, callback=sigterm_at_3)
    assert first["status"] == "interrupted" and first["step"] == 3
    assert ckpt.latest_step(tmp_path / "split" / "checkpoints") == 3
    second = train(cfg, t, resume=True)
    assert second["status"] == "done" and second["step"] == 6

    assert losses(tmp_path / "split") == losses(tmp_path / "full")  # exact float equality
    assert [s for s, _ in losses(tmp_path / "full")] == [1, 2, 3, 4, 5, 6]
    _, p_full, _ = load_run(tmp_path / "full")
    _, p_split, _ = load_run(tmp_path / "split")
    for name, a in flatten_params(p_full).items():
        np.testing.assert_array_equal(a, flatten_params(p_split)[name], err_msg=name)
    assert losses(tmp_path / "full")[-1][1] < losses(tmp_path / "full")[0][1]  # it learns


def test_training_loop_pauses_after_every_step_for_its_duration(tmp_path, data_dir, monkeypatch):
    """Each step's wall time goes to hostmem.hand_over_gil: the pause that lets XLA free the step's memory."""
    from minigpt import hostmem

    seen: list[float] = []
    monkeypatch.setattr(hostmem, "hand_over_gil", seen.append)
    out = train(CFG, tcfg_for(data_dir, tmp_path / "run"))
    assert out["status"] == "done" and len(seen) == out["step"] == 6
    assert all(0 < s < 60 for s in seen), seen


def test_run_directory_load_run_plot_and_cli(tmp_path, data_dir, capsys):
    data = write_data(tmp_path / "data")
    (data / "tokenizer").mkdir()
    (data / "tokenizer" / "vocab.json").write_text('{"a": 0}')
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps({"model": {"n_layer": 1}, "train": {"eval_batches": 2}, "dropout": 0.1, "keep_checkpoints": 2})
    )
    run = tmp_path / "run"
    argv = ["--data", str(data), "--out", str(run), "--preset", "tiny", "--config", str(config)]
    argv += ["--max-steps", "6", "--batch_size", "4", "--lr", "3e-3", "--warmup_steps", "2", "--lr_decay_steps", "6"]
    argv += ["--min_lr", "3e-4"]
    argv += ["--eval_interval", "3", "--ckpt_interval", "2", "--log_interval", "1", "--progress", "false"]
    argv += ["--grad-accum", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"done at step 6 in .*val loss \d+\.\d+ \(perplexity \d+\.\d+\)", out), out
    assert f"checkpoint: {run / 'checkpoints' / '6'}" in out

    saved = json.loads((run / "config.json").read_text())
    assert saved["model"] == CFG.to_dict() and saved["train"]["keep_checkpoints"] == 2
    assert saved["train"]["eval_batches"] == 2 and saved["train"]["max_steps"] == 6
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == ["4", "6"]  # keep 2
    assert (run / "tokenizer" / "vocab.json").read_text() == '{"a": 0}'
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = read_metrics(run)
    assert [r["step"] for r in records if "val_loss" in r] == [0, 3, 6]
    assert all(math.isclose(r["val_ppl"], math.exp(r["val_loss"]), rel_tol=1e-9) for r in records if "val_loss" in r)

    # load_run: the reference layout, as NumPy; the same parameters as the checkpoint's step
    (run / "tokenizer").rename(tmp_path / "moved_tokenizer")  # minigpt.tokenizers is another area's module
    cfg, params, tok = load_run(run)
    assert cfg == CFG and tok is None
    validate_params(params, cfg)
    assert all(isinstance(v, np.ndarray) for v in flatten_params(params).values())
    _, p4, _ = load_run(run, step=4)
    assert not np.array_equal(p4["wte"]["weight"], params["wte"]["weight"])
    with pytest.raises(ValueError, match="no checkpoint for step 5"):
        load_run(run, step=5)

    # the final validation loss is the model's own loss on the fixed validation batches
    from minigpt.data import BatchSampler

    val = np.load(data / "val.npy")
    sampler = BatchSampler(val, cfg.block_size, 4, seed=1_234_567)
    p64 = map_params(lambda a: a.astype(np.float64), params)  # the NumPy reference has no dropout
    per_batch = [float(ref.loss(p64, *sampler.batch(i), cfg)) for i in range(2)]
    assert records[-1]["val_loss"] == pytest.approx(float(np.mean(per_batch)), rel=1e-5)

    # plot command
    from minigpt.plot import main as plot_main

    (run / "loss.png").unlink()
    assert plot_main([str(run)]) == 0 and (run / "loss.png").exists()
    assert plot_main([str(tmp_path / "nowhere")]) == 2

    # resuming with an incompatible setting: a clear error, nothing touched
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert main(["--out", str(run), "--resume", "--lr", "1e-2", "--progress", "false"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "lr: checkpoint has 0.003, requested 0.01" in err
    assert main(argv) == 2  # a fresh run into a directory with checkpoints
    assert "already holds checkpoints" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    # resuming with more steps is allowed and continues from step 6
    assert main(["--out", str(run), "--resume", "--max_steps", "7", "--progress", "false"]) == 0
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == [1, 2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--n_layers", "3"], "unknown option '--n_layers'; did you mean 'n_layer'"),
        (["--preset", "huge"], "unknown preset 'huge'"),
        (["--batch_size", "5000"], "batch_size=5000 is larger than the data"),
        (["--block_size", "600"], "block_size=600 is larger than the val split allows"),
        (["--vocab_size", "10"], "disagrees with the data's vocab_size 64"),
        (["--lr", "1e-5"], "min_lr=0.0002 exceeds lr=1e-05"),
        (["--compute_dtype", "float16"], "compute_dtype must be one of"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, data_dir, capsys, extra, message):
    argv = ["--data", str(data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny", "--progress", "0"]
    assert main(argv + extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_data_is_file_not_found(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")]) == 2
    assert "train.npy not found" in capsys.readouterr().err


def test_nan_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path, data_dir, capsys, monkeypatch):
    """A non-finite loss at step 4 (simulated: the real compiled step, its 4th result poisoned) → exit 1."""
    import minigpt.train as train_module

    argv = ["--data", str(data_dir), "--out", str(tmp_path / "run"), "--preset", "tiny", "--n_layer", "1"]
    argv += ["--dropout", "0.1", "--batch_size", "4", "--grad_accum", "2", "--lr", "3e-3", "--min_lr", "3e-4"]
    argv += ["--warmup_steps", "2", "--lr_decay_steps", "6", "--max_steps", "6", "--ckpt_interval", "1"]
    argv += ["--eval_batches", "2", "--log_interval", "1", "--progress", "false"]
    real = compiled_steps(CFG, StepSpec.of(tcfg_for(data_dir, tmp_path)))
    calls = []

    class Poisoned:
        def __init__(self):
            self.tx, self.eval_step = real.tx, real.eval_step

        def train_step(self, *args):
            params, opt_state, out = real.train_step(*args)
            calls.append(1)
            if len(calls) == 4:
                params = jax.tree.map(lambda a: a * jnp.nan, params)
                out = {**out, "loss": jnp.float32(jnp.nan)}
            return params, opt_state, out

    monkeypatch.setattr(train_module, "compiled_steps", lambda cfg, spec: Poisoned())
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "stopped: non-finite loss at step 4" in out and "the last good checkpoint is step 3" in out
    assert [r["step"] for r in read_metrics(tmp_path / "run") if "loss" in r] == [1, 2, 3]
    assert ckpt.latest_step(tmp_path / "run" / "checkpoints") == 3
    _, params, _ = load_run(tmp_path / "run")
    assert all(np.isfinite(v).all() for v in flatten_params(params).values())


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from minigpt import checkpoint as ckpt
    mngr = ckpt.manager(sys.argv[1], keep=3)
    for step in range(1, 10_000):
        params = {"w": np.full((512, 1024), float(step), np.float32), "h": [{"b": np.full(7, float(step), np.float32)}]}
        ckpt.save(mngr, step, params, {"mu": params}, {"step": step})
        print(step, flush=True)
    """
)


def test_sigkill_during_save_leaves_previous_checkpoint_loadable(tmp_path):
    directory = tmp_path / "ck"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        for _ in range(3):  # three completed saves, then kill in the middle of later ones
            assert proc.stdout.readline().strip(), "the saving subprocess died"
        time.sleep(0.05)
        proc.kill()  # SIGKILL
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    latest = ckpt.latest_step(directory)
    assert latest is not None and latest >= 3
    abstract = {
        "w": jax.ShapeDtypeStruct((512, 1024), jnp.float32),
        "h": [{"b": jax.ShapeDtypeStruct((7,), jnp.float32)}],
    }
    import orbax.checkpoint as ocp

    mngr = ckpt.manager(directory, read_only=True)
    restored = mngr.restore(latest, args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract)))
    assert float(np.asarray(restored.params["w"]).min()) == float(np.asarray(restored.params["w"]).max()) == latest
    # and a new manager can continue saving in the same directory
    mngr = ckpt.manager(directory, keep=3)
    one = {"w": np.zeros((2,), np.float32)}
    ckpt.save(mngr, latest + 100, one, {"mu": one}, {"step": latest + 100})
    assert ckpt.latest_step(directory) == latest + 100


def test_train_config_validation():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="beta2 must be in"):
        TrainConfig(beta2=1.0)
    assert TrainConfig(max_steps=50).decay_steps == 50
    assert TrainConfig(max_steps=50, lr_decay_steps=20).decay_steps == 20
    # the compiled step's schedule keeps the run's decay horizon even though max_steps is not part of it
    assert StepSpec.of(TrainConfig(max_steps=50)).tcfg.decay_steps == 50
    assert StepSpec.of(TrainConfig(max_steps=50)) == StepSpec.of(TrainConfig(max_steps=70, lr_decay_steps=50))


def test_resume_may_switch_kernels_but_not_the_mathematics(tmp_path):
    """fast_kernels changes how the step is computed, not what: a run may resume with it flipped."""
    import dataclasses

    from minigpt.train import _check_resumable, cpu_compiler_options

    tcfg = TrainConfig(progress=False)
    saved = {"model": CFG.to_dict(), "train": dataclasses.asdict(tcfg)}
    _check_resumable(saved, CFG, tcfg.replace(fast_kernels=False), tmp_path)  # no error
    with pytest.raises(ValueError, match="lr: checkpoint has 0.002, requested 0.001"):
        _check_resumable(saved, CFG, tcfg.replace(lr=1e-3), tmp_path)
    # on a CPU the fast path also asks XLA for multi-threaded batched dots (when this jaxlib knows the option)
    options = cpu_compiler_options()
    assert options is None or options == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}

"""minigpt.training.loop: bit-exact resume, the GIL hand-over, NaN stops, the run lock, damaged checkpoints."""

from __future__ import annotations

import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from train_data import CFG, damage, lock_holder, tcfg_for, write_data

from minigpt.params import flatten_params
from minigpt.training import checkpoint as ckpt
from minigpt.training import loop
from minigpt.training.loop import train
from minigpt.training.runs import RunInUse, load_run, read_metrics
from minigpt.training.step import StepSpec, compiled_steps

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data"))


def losses(run_dir: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if "loss" in r]


def quiet(*_):
    pass


@pytest.mark.slow
def test_resume_after_sigterm_is_bit_exact(tmp_path, data_dir):
    """(train 2N) == (train, SIGTERM after N, resume, train to 2N): same losses, same final parameters."""
    cfg = CFG  # with dropout: the dropout key must be restored too
    full = train(cfg, tcfg_for(data_dir, tmp_path / "full"), log=quiet)
    assert full["status"] == "done" and full["step"] == 6

    def sigterm_at_3(step, record):
        if step == 3:
            signal.raise_signal(signal.SIGTERM)

    t = tcfg_for(data_dir, tmp_path / "split", ckpt_interval=100)
    first = train(cfg, t, callback=sigterm_at_3, log=quiet)
    assert first["status"] == "interrupted" and first["step"] == 3
    assert ckpt.latest_step(tmp_path / "split" / "checkpoints") == 3
    second = train(cfg, t, resume=True, log=quiet)
    assert second["status"] == "done" and second["step"] == 6

    assert losses(tmp_path / "split") == losses(tmp_path / "full")  # exact float equality
    assert [s for s, _ in losses(tmp_path / "full")] == [1, 2, 3, 4, 5, 6]
    _, p_full, _ = load_run(tmp_path / "full")
    _, p_split, _ = load_run(tmp_path / "split")
    for name, a in flatten_params(p_full).items():
        np.testing.assert_array_equal(a, flatten_params(p_split)[name], err_msg=name)
    assert losses(tmp_path / "full")[-1][1] < losses(tmp_path / "full")[0][1]  # it learns


@pytest.mark.slow
def test_the_schedule_is_fixed_when_a_run_starts_and_kept_when_it_is_extended(tmp_path, data_dir):
    """A run started with max_steps=3 (lr_decay_steps unset) and resumed to 6 decays as if lr_decay_steps were 3."""
    t = tcfg_for(data_dir, tmp_path / "extended", max_steps=3, lr_decay_steps=0)
    assert train(CFG, t, log=quiet)["step"] == 3
    assert train(CFG, t.replace(max_steps=6), resume=True, log=quiet)["step"] == 6
    train(CFG, tcfg_for(data_dir, tmp_path / "planned", lr_decay_steps=3), log=quiet)
    assert losses(tmp_path / "extended") == losses(tmp_path / "planned")
    assert [r["lr"] for r in read_metrics(tmp_path / "extended") if "lr" in r][3:] == pytest.approx([t.min_lr] * 3)


def test_training_loop_pauses_after_every_step_for_its_duration(tmp_path, data_dir, monkeypatch):
    """Each step's wall time goes to hostmem.hand_over_gil: the pause that lets XLA free the step's memory."""
    from minigpt.training import hostmem

    seen: list[float] = []
    monkeypatch.setattr(hostmem, "hand_over_gil", seen.append)
    out = train(CFG, tcfg_for(data_dir, tmp_path / "run"), log=quiet)
    assert out["status"] == "done" and len(seen) == out["step"] == 6
    assert all(0 < s < 60 for s in seen), seen


def poisoned_steps(data_dir, tmp_path, at: int):
    """The real compiled step, its ``at``-th result poisoned with NaN."""
    real = compiled_steps(CFG, StepSpec.of(tcfg_for(data_dir, tmp_path)))
    calls = []

    class Poisoned:
        def __getattr__(self, name):
            return getattr(real, name)

        def train_step(self, *args):
            params, opt_state, out = real.train_step(*args)
            calls.append(1)
            if len(calls) == at:
                params = jax.tree.map(lambda a: a * jnp.nan, params)
                out = {**out, "loss": jnp.float32(jnp.nan)}
            return params, opt_state, out

    return Poisoned()


@pytest.mark.parametrize(("ckpt_interval", "kept"), [(1, "the last good checkpoint is step 3"), (100, None)])
def test_nan_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path, data_dir, monkeypatch, ckpt_interval, kept):
    """A non-finite loss at step 4 (simulated) stops the run; before any save the message says so, never 'None'."""
    monkeypatch.setattr(loop, "compiled_steps", lambda *a: poisoned_steps(data_dir, tmp_path, at=4))
    messages = []
    out = train(CFG, tcfg_for(data_dir, tmp_path / "run", ckpt_interval=ckpt_interval), log=messages.append)
    assert out["status"] == "nan" and out["step"] == 3
    text = " ".join(messages)
    assert "stopped: non-finite loss at step 4" in text and "None" not in text
    assert [r["step"] for r in read_metrics(tmp_path / "run") if "loss" in r] == [1, 2, 3]
    if kept is None:
        assert "no checkpoint has been saved yet" in text and out["checkpoint"] is None
        assert ckpt.latest_step(tmp_path / "run" / "checkpoints") is None
        return
    assert kept in text
    assert ckpt.latest_step(tmp_path / "run" / "checkpoints") == 3
    _, params, _ = load_run(tmp_path / "run")
    assert all(np.isfinite(v).all() for v in flatten_params(params).values())


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_resume_falls_back_to_the_newest_checkpoint_that_restores(tmp_path, data_dir, how):
    """Newest checkpoint damaged (two good ones kept): resume warns with step and path, continues from the one before,
    sets the damaged one aside, and ends where an undamaged run ends — bit for bit."""
    t = tcfg_for(data_dir, tmp_path / "run", ckpt_interval=2)
    train(CFG, t, log=quiet)
    ref = load_run(tmp_path / "run")[1]
    ckpt_dir = tmp_path / "run" / "checkpoints"
    assert ckpt.latest_step(ckpt_dir) == 6
    damage(ckpt_dir / "6", how, item="opt_state")
    messages = []
    out = train(CFG, t, resume=True, log=messages.append)
    text = "\n".join(messages)
    assert f"checkpoint step 6 ({ckpt_dir / '6'}) does not restore" in text, text
    assert "resuming" in text and "from step 4" in text
    assert (tmp_path / "run" / "damaged" / "6").is_dir()
    assert out["status"] == "done" and out["step"] == 6
    got = load_run(tmp_path / "run")[1]
    for name, a in flatten_params(ref).items():
        np.testing.assert_array_equal(flatten_params(got)[name], a, err_msg=name)
    assert [s for s, _ in losses(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


def test_a_second_trainer_is_refused_naming_the_holder_and_sigkill_frees_the_run(tmp_path, data_dir):
    run = tmp_path / "run"
    holder = lock_holder(run)
    try:
        with pytest.raises(RunInUse, match=rf"in use by another trainer \(pid {holder.pid}\)"):
            train(CFG, tcfg_for(data_dir, run), log=quiet)
        assert not (run / "checkpoints").exists() and not (run / "metrics.jsonl").exists()
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait(timeout=30)
        assert train(CFG, tcfg_for(data_dir, run, max_steps=1), log=quiet)["status"] == "done"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()

"""``minigpt train --task sft`` and ``--task dpo`` on tiny chat data: the step's loss is the reference's masked
loss, DPO starts at exactly log 2 against its frozen reference, logs its metrics, learns, and resumes bit-exactly."""

from __future__ import annotations

import math
import shutil
import signal
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from minigpt.training.cli import main as train_main

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.data.replies import prepare
from minigpt.params import flatten_params
from minigpt.tokenizers import load_tokenizer
from minigpt.training.chat_inputs import ChatSampler, load_chat, pair_batch
from minigpt.training.config import TrainConfig
from minigpt.training.dpo import dpo_train_step
from minigpt.training.loop import train
from minigpt.training.runs import load_run, read_metrics


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def chat_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("chat") / "data"
    prepare(out, max_review_chars=8)
    for split, n in (("train", 600), ("val", 100)):  # a slice of the data keeps π_ref's pass short
        path = out / f"{split}.jsonl"
        path.write_text("".join(path.read_text(encoding="utf-8").splitlines(keepends=True)[:n]), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def cfg(chat_data) -> GPTConfig:
    V = load_tokenizer(chat_data / "tokenizer").vocab_size
    return GPTConfig(vocab_size=V, block_size=64, n_layer=1, n_head=2, n_embd=32)


def tcfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), preset="tiny", batch_size=4, max_steps=6, lr=3e-3, min_lr=3e-4)
    base |= dict(warmup_steps=0, eval_interval=3, eval_batches=2, log_interval=1, ckpt_interval=3, progress=False)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, chat_data, cfg) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sft"
    assert train(cfg, tcfg(chat_data, out, task="sft", max_steps=12, lr=1e-2), log=quiet)["status"] == "done"
    return out


def test_sft_step_loss_is_the_reference_masked_loss(chat_data, cfg, tmp_path):
    t = tcfg(chat_data, tmp_path / "one", task="sft", max_steps=1)
    first = {}
    train(cfg, t, callback=lambda step, record: first.setdefault(step, record["loss"]), log=quiet)
    x, y = ChatSampler(load_chat(cfg, t, quiet)["train"], cfg.block_size, t.batch_size, t.seed).batch(0)
    assert np.any(y == -1) and np.any(y != -1)
    params = ref.init_params(cfg, seed=t.seed)
    assert first[1] == pytest.approx(float(ref.sft_loss(params, x, y, cfg)), rel=1e-5)
    assert first[1] != pytest.approx(float(ref.sft_loss(params, x, np.where(y == -1, x, y), cfg)), rel=1e-3)


def test_sft_learns_the_replies(sft_run):
    records = read_metrics(sft_run)
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert val[-1] < val[0] - 1.0


@pytest.fixture(scope="module")
def pairs8(tmp_path_factory, chat_data) -> Path:
    """8 pairs that are both the train and the val split: DPO must raise their margins (an optimisation test)."""
    out = tmp_path_factory.mktemp("chat8") / "data"
    shutil.copytree(chat_data, out)
    lines = (chat_data / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:8]
    for split in ("train", "val"):
        (out / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    return out


DPO = dict(task="dpo", beta=0.5, lr=1e-3, min_lr=1e-4)


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, pairs8, cfg, sft_run) -> Path:
    out = tmp_path_factory.mktemp("runs") / "dpo"
    assert train(cfg, tcfg(pairs8, out, init_from=str(sft_run), **DPO), log=quiet)["status"] == "done"
    return out


def test_dpo_step_gradient_is_the_reference_hand_written_one(chat_data, cfg):
    """One DPO step with plain SGD(1): params − new params = ∂L/∂θ, against reference.dpo_loss_and_grads."""
    t = tcfg(chat_data, Path("unused"), init_from="unused", **DPO)
    x, y = pair_batch(load_chat(cfg, t, quiet)["train"][:3], cfg.block_size)
    params = ref.init_params(cfg, seed=1)
    ref_logps = np.random.default_rng(0).normal(size=6).astype(np.float32) - 30
    loss, grads = ref.dpo_loss_and_grads(params, (x[:3], y[:3]), (x[3:], y[3:]), ref_logps[:3], ref_logps[3:], cfg, 0.5)
    tx = optax.sgd(1.0)
    new, _, out = dpo_train_step(
        jax.tree.map(np.copy, params), tx.init(params), x[None], (y[None], ref_logps[None]), jax.random.key(0),
        cfg=cfg, tcfg=t, tx=tx,
    )  # fmt: skip
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-5)
    before, after, want = (flatten_params(jax.tree.map(np.asarray, p)) for p in (params, new, grads))
    for name in want:
        np.testing.assert_allclose(before[name] - after[name], want[name], atol=1e-5, rtol=1e-4, err_msg=name)


def test_dpo_starts_at_log_2_logs_its_metrics_and_learns(dpo_run):
    records = read_metrics(dpo_run)
    evals = [r for r in records if "val_loss" in r]
    assert evals[0]["val_loss"] == pytest.approx(math.log(2), abs=1e-6)  # the policy is its reference
    assert abs(evals[0]["val_reward_margin"]) < 1e-4  # float32 rounding: π_ref ran on batches of another shape
    for key in ("val_reward_accuracy", "val_reward_margin", "val_logratio_chosen", "val_logratio_rejected"):
        assert all(key in r for r in evals)
    steps = [r["loss"] for r in records if "loss" in r]
    assert steps[0] == pytest.approx(math.log(2), abs=1e-6)
    assert evals[-1]["val_loss"] < math.log(2) - 0.05 and evals[-1]["val_reward_margin"] > 0
    ref_train = np.load(dpo_run / "ref_logps_train.npy")  # only the pairs the run samples: the others are NaN
    done = ~np.isnan(ref_train)
    assert ref_train.shape == (8, 2) and done.any() and np.all(ref_train[done] < 0)
    assert (dpo_run / "loss.png").is_file()


@pytest.mark.slow
def test_dpo_resume_is_bit_exact(dpo_run, pairs8, cfg, sft_run, tmp_path):
    def sigterm_at_3(step, record):
        if step == 3:
            signal.raise_signal(signal.SIGTERM)

    t = tcfg(pairs8, tmp_path / "split", init_from=str(sft_run), ckpt_interval=100, **DPO)
    assert train(cfg, t, callback=sigterm_at_3, log=quiet)["status"] == "interrupted"
    assert train(cfg, t, resume=True, log=quiet)["status"] == "done"

    def curve(d):
        return [r["loss"] for r in read_metrics(d) if "loss" in r]

    assert curve(tmp_path / "split") == curve(dpo_run)
    saved = np.load(tmp_path / "split" / "ref_logps_train.npy")
    saved[0] = np.nan  # as if more steps reached a pair the run never gave reference log-probs
    np.save(tmp_path / "split" / "ref_logps_train.npy", saved)
    with pytest.raises(ValueError, match="start a new DPO run"):
        train(cfg, t.replace(max_steps=400), resume=True, log=quiet)
    a, b = load_run(dpo_run)[1], load_run(tmp_path / "split")[1]
    np.testing.assert_array_equal(a["wte"]["weight"], b["wte"]["weight"])


@pytest.mark.slow
def test_dpo_lora_trains_adapters_from_the_sft_run(chat_data, cfg, sft_run, tmp_path):
    t = tcfg(chat_data, tmp_path / "lora", task="dpo", init_from=str(sft_run), lora_rank=4, max_steps=3, lr=1e-2)
    assert train(cfg, t, log=quiet)["status"] == "done"
    evals = [r for r in read_metrics(tmp_path / "lora") if "val_loss" in r]
    assert (
        evals[0]["val_loss"] == pytest.approx(math.log(2), abs=1e-6) and evals[-1]["val_loss"] != evals[0]["val_loss"]
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--task", "dpo"], "pass --init_from SFT_RUN"),
        (["--task", "chat"], "task must be one of"),
        (["--task", "sft", "--beta", "0"], "beta must be a positive number"),
    ],
)
def test_bad_chat_flags_are_one_line_errors(chat_data, tmp_path, capsys, extra, message):
    assert train_main(["--data", str(chat_data), "--out", str(tmp_path / "r"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_sft_on_token_data_is_refused(tmp_path, cfg):
    from train_data import write_data

    d = write_data(tmp_path / "lm", vocab=cfg.vocab_size)
    with pytest.raises(ValueError, match="needs chat data"):
        train(cfg, tcfg(d, tmp_path / "r", task="sft"), log=quiet)

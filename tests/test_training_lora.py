"""LoRA training: the base stays bit-identical, only adapter-sized state is kept, resuming is bit-exact, the run
directory holds the adapters (load_run merges them), ``minigpt sample`` runs on it, and bad flags are one line."""

from __future__ import annotations

import signal
import string
from pathlib import Path

import jax
import numpy as np
import pytest
from train_data import CFG, cli_args, tcfg_for, write_data

from minigpt import adapters as AD
from minigpt.commands.train import main as train_main
from minigpt.params import flatten_params, weight_decay_mask
from minigpt.reference import init_params
from minigpt.reference.lora import merge_params
from minigpt.training.loop import train
from minigpt.training.runs import load_lora, load_run, read_metrics
from minigpt.training.step import StepSpec, compiled_steps

LORA = dict(lora_rank=4, lora_alpha=32.0, lora_targets="c_attn,c_proj,mlp.c_fc", lr=3e-2, min_lr=3e-3)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = write_data(tmp_path_factory.mktemp("data"))
    from minigpt.tokenizers.char import CharTokenizer

    CharTokenizer(string.ascii_letters + "0123456789").save(d / "tokenizer")  # 62 + <unk>, <eot> = vocab 64
    return d


def quiet(*_):
    pass


def losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir) if "loss" in r]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    assert train(CFG, tcfg_for(data_dir, out, **LORA), log=quiet)["status"] == "done"
    return out


def test_base_is_bit_identical_and_only_the_adapters_learn(full_run):
    tcfg = tcfg_for(Path("."), full_run, **LORA)
    cfg, base, adapters, spec, _ = load_lora(full_run)
    assert spec == tcfg.lora and cfg == CFG
    start = flatten_params(init_params(CFG, seed=tcfg.seed))
    for name, value in flatten_params(base).items():
        assert np.array_equal(value, start[name]), name  # frozen: not one bit moved
    flat = flatten_params(adapters)
    assert sorted(flat) == sorted(AD.adapter_shapes(CFG, spec))
    assert all(np.any(v != 0) for k, v in flat.items() if k.endswith(".B"))  # B left zero: it trained
    fresh = flatten_params(AD.init_adapters(CFG, spec, tcfg.seed))
    assert all(not np.array_equal(v, fresh[k]) for k, v in flat.items())
    curve, val = losses(full_run), [r["val_loss"] for r in read_metrics(full_run) if "val_loss" in r]
    assert curve[-1] < curve[0] and val[-1] < val[0] - 0.1  # it learns through the adapters alone


def test_optimizer_state_holds_only_adapter_sized_moments(data_dir, tmp_path):
    steps = compiled_steps(CFG, StepSpec.of(tcfg_for(data_dir, tmp_path, **LORA)))
    state = jax.eval_shape(steps.tx.init, steps.abstract_trained)
    shapes = sorted(leaf.shape for leaf in jax.tree.leaves(state) if leaf.ndim > 0)
    adapter = sorted(AD.adapter_shapes(CFG, steps.lora).values())
    assert shapes == sorted(adapter * 2)  # AdamW's μ and ν per adapter tensor, nothing of the base's size
    assert all(jax.tree.leaves(weight_decay_mask(steps.abstract_trained)))  # A and B are decayed towards 0


@pytest.mark.slow
def test_resume_of_a_lora_run_is_bit_exact(full_run, data_dir, tmp_path):
    def sigterm_at_3(step, record):
        if step == 3:
            signal.raise_signal(signal.SIGTERM)

    t = tcfg_for(data_dir, tmp_path / "split", ckpt_interval=100, **LORA)
    assert train(CFG, t, callback=sigterm_at_3, log=quiet)["status"] == "interrupted"
    assert train(CFG, t, resume=True, log=quiet)["status"] == "done"
    assert losses(tmp_path / "split") == losses(full_run)  # exact float equality
    a, b = (flatten_params(load_lora(d)[2]) for d in (full_run, tmp_path / "split"))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    with pytest.raises(ValueError, match="lora_rank: checkpoint has 4, requested 2"):
        train(CFG, t.replace(lora_rank=2), resume=True, log=quiet)


@pytest.mark.slow
def test_load_run_merges_and_sample_runs_on_a_lora_run(full_run, capsys):
    cfg, merged, tokenizer = load_run(full_run)
    _, base, adapters, spec, _ = load_lora(full_run)
    want = flatten_params(merge_params(base, adapters, spec.scale))
    got = flatten_params(merged)
    assert sorted(got) == sorted(flatten_params(base))  # a plain model: no adapter entries left
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert not np.array_equal(got["h.0.attn.c_attn.weight"], flatten_params(base)["h.0.attn.c_attn.weight"])
    from minigpt.commands.sample import main as sample_main

    assert sample_main([str(full_run), "--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.startswith("ab")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--lora-rank", "2", "--lora-targets", "c_attn,q_proj"],
            "unknown LoRA target 'q_proj'; valid targets: c_attn",
        ),
        (["--lora-targets", "c_attn"], "--lora-targets c_attn needs --lora-rank r > 0"),
        (["--lora-rank", "-1"], "lora_rank must be a non-negative integer"),
        (["--lora-rank", "2", "--lora-alpha", "0"], "LoRA alpha must be a positive number"),
    ],
)
def test_bad_lora_flags_are_one_line_errors(tmp_path, data_dir, capsys, extra, message):
    assert train_main(cli_args(data_dir, tmp_path / "bad") + extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_help_shows_the_lora_flags(capsys):
    with pytest.raises(SystemExit):
        train_main(["--help"])
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--lora-rank", "--lora-alpha", "--lora-targets"))

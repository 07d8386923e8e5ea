"""minigpt.training.config: TrainConfig validation, the resume rules, settings files, one doc per field."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt.config import FIELD_DOCS, GPTConfig
from minigpt.training.config import (
    EQUIVALENT_CHANGES,
    RESUMABLE_CHANGES,
    TRAIN_DOCS,
    TRAIN_FIELDS,
    TrainConfig,
    pin_decay,
    read_settings,
    resume_config,
)
from minigpt.training.step import StepSpec

CFG = GPTConfig.preset("tiny", n_layer=1)


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


def test_every_field_has_one_line_of_doc():
    for docs, fields in ((TRAIN_DOCS, TRAIN_FIELDS), (FIELD_DOCS, [f.name for f in dataclasses.fields(GPTConfig)])):
        assert set(docs) == set(fields)
        for name, doc in docs.items():
            assert doc.strip() and "\n" not in doc and len(doc) < 100, name


@given(max_steps=st.integers(1, 10_000), decay=st.integers(0, 10_000))
def test_pin_decay_fixes_the_horizon_once(max_steps, decay):
    pinned = pin_decay(TrainConfig(max_steps=max_steps, lr_decay_steps=decay))
    assert pinned.lr_decay_steps == (decay or max_steps)
    assert pin_decay(pinned.replace(max_steps=max_steps + 7)).lr_decay_steps == pinned.lr_decay_steps


def test_resume_may_switch_kernels_and_resumable_fields_but_not_the_mathematics(tmp_path):
    """fast changes how the step is computed, not what: a run may resume with it flipped."""
    tcfg = TrainConfig(progress=False, lr_decay_steps=40)
    saved = {"model": CFG.to_dict(), "train": dataclasses.asdict(tcfg)}
    assert resume_config(saved, CFG, tcfg.replace(fast=False), tmp_path).fast is False
    assert resume_config(saved, CFG, tcfg.replace(max_steps=9000, mesh="data=1"), tmp_path).max_steps == 9000
    assert resume_config(saved, CFG, tcfg.replace(lr_decay_steps=0), tmp_path).lr_decay_steps == 40  # the saved one
    with pytest.raises(ValueError, match="lr: checkpoint has 0.002, requested 0.001"):
        resume_config(saved, CFG, tcfg.replace(lr=1e-3), tmp_path)
    with pytest.raises(ValueError, match="n_embd: checkpoint has 32, requested 64"):
        resume_config(saved, CFG.replace(n_embd=64), tcfg, tmp_path)
    # every field outside the two sets is refused when it changes
    for f in dataclasses.fields(TrainConfig):
        if f.name in RESUMABLE_CHANGES | EQUIVALENT_CHANGES or f.type not in ("int", "float"):
            continue
        value = getattr(tcfg, f.name)
        changed = tcfg.replace(**{f.name: value + 1 if f.type == "int" else value * 0.5})
        with pytest.raises(ValueError, match=f"{f.name}: checkpoint has"):
            resume_config(saved, CFG, changed, tmp_path)


def test_settings_files_flat_or_nested_and_their_errors(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"model": {"n_layer": 1}, "train": {"eval_batches": 2}, "dropout": 0.1, "lr": 1e-3}))
    assert read_settings(path) == ({"n_layer": 1, "dropout": 0.1}, {"eval_batches": 2, "lr": 1e-3})
    path.write_text(json.dumps({"lrr": 1}))
    with pytest.raises(ValueError, match="unknown setting 'lrr'; did you mean 'lr'"):
        read_settings(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        read_settings(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_settings(tmp_path / "none.json")


def test_the_old_name_fast_kernels_still_works(tmp_path):
    """Runs and scripts written before the rename: the attribute, checkpoints, config files."""
    assert TrainConfig(fast=False).fast_kernels is False
    assert "fast_kernels" not in dataclasses.asdict(TrainConfig())  # new runs save the new name
    old = {k: v for k, v in dataclasses.asdict(TrainConfig(lr_decay_steps=40)).items() if k != "fast"}
    saved = {"model": CFG.to_dict(), "train": {**old, "fast_kernels": True}}  # a checkpoint of an old run
    assert resume_config(saved, CFG, TrainConfig(lr_decay_steps=40, fast=False), tmp_path).fast is False
    (tmp_path / "old.json").write_text('{"train": {"fast_kernels": false}, "lr": 0.001}')
    model, train = read_settings(tmp_path / "old.json")
    assert train == {"fast": False, "lr": 0.001} and model == {}

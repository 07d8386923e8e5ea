"""Old module names keep working after the re-layout: each resolves to the same module object as its new home
(so monkeypatching either patches both), and the public names users type are there."""

from __future__ import annotations

import importlib
import pathlib

import pytest

import minigpt

SAME_MODULE = {
    "minigpt.corpus": "minigpt.data.corpus",
    "minigpt.peoples_daily": "minigpt.data.peoples_daily",
    "minigpt.sources": "minigpt.data.sources",
    "minigpt.checkpoint": "minigpt.training.checkpoint",
    "minigpt.runs": "minigpt.training.runs",
    "minigpt.distributed": "minigpt.training.distributed",
    "minigpt.hostmem": "minigpt.training.hostmem",
    "minigpt.kernels": "minigpt.model.kernels",
    "minigpt.hub_llama": "minigpt.hub.llama",
    "minigpt.attention_maps": "minigpt.viz.attention",
    "minigpt.demo": "minigpt.commands.demo",
    "minigpt.sample": "minigpt.commands.sample",
    "minigpt.verify": "minigpt.commands.verify",
    "minigpt.testing.grading": "minigpt.testing.grader.grading",
    "minigpt.testing.runner": "minigpt.testing.grader.runner",
    "minigpt.testing.worker": "minigpt.testing.grader.worker",
    "minigpt.testing.submission": "minigpt.testing.grader.submission",
    "minigpt.testing.provenance": "minigpt.testing.grader.provenance",
    "minigpt.testing.timelimit": "minigpt.testing.grader.timelimit",
    "minigpt.testing.reports": "minigpt.testing.grader.reports",
    "minigpt.testing.diagnosis": "minigpt.testing.checks.diagnosis",
    "minigpt.testing.jax_checkers": "minigpt.testing.checks.jax_twin",
    "minigpt.testing.optim_checkers": "minigpt.testing.checks.training",
    "minigpt.testing.decoding_checkers": "minigpt.testing.checks.decoding",
    "minigpt.testing.app_checkers": "minigpt.testing.checks.ecommerce",
    "minigpt.testing.lora_checkers": "minigpt.testing.checks.lora",
    "minigpt.testing.llama_checkers": "minigpt.testing.checks.llama",
    "minigpt.testing.grade_cli": "minigpt.commands.grade",
}

# (old module, names it must still offer) for the modules that were split
SPLIT = {
    "minigpt.data": ["BatchSampler", "load_split", "load_lines", "load_meta", "load_line_offsets", "prepare"],
    "minigpt.hub": ["load_pretrained", "save_pretrained", "config_from_hf", "params_to_hf", "CONFIG_NAME"],
    "minigpt.plot": ["plot_run", "main"],
    "minigpt.train": ["TrainConfig", "train", "load_run", "read_metrics", "compiled_steps", "StepSpec", "main"],
    "minigpt.testing.model_checkers": ["check_split_heads", "check_merge_heads", "check_sequence_log_likelihood"],
    "minigpt.testing.checkers": [
        "check_attention",
        "check_softmax",
        "check_layer_backward",
        "check_rope",
        "check_lora",
    ],
    "minigpt.generate": ["generate", "beam_search", "JaxDecoder", "ReferenceDecoder", "ReferenceKVCache"],
}


@pytest.mark.parametrize("old,new", SAME_MODULE.items())
def test_an_old_module_name_is_its_new_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize("module,names", SPLIT.items())
def test_split_modules_keep_their_public_names(module, names):
    m = importlib.import_module(module)
    missing = [n for n in names if not hasattr(m, n)]
    assert not missing


def test_every_alias_file_is_listed_here():
    """A new alias file must be added to the tables above (so it is tested), and a listed one must exist."""
    root = pathlib.Path(minigpt.__file__).parent
    files = {f"minigpt.{p.stem}" for p in (root / "moved").glob("*.py")}
    files |= {f"minigpt.testing.{p.stem}" for p in (root / "testing" / "moved").glob("*.py")}
    assert files == set(SAME_MODULE) | {"minigpt.plot", "minigpt.train", "minigpt.testing.model_checkers"}


def test_the_top_level_holds_only_the_shared_contracts():
    root = pathlib.Path(minigpt.__file__).parent
    assert sorted(p.name for p in root.glob("*.py")) == [
        "__init__.py", "adapters.py", "atomic.py", "cli.py", "config.py", "params.py", "validation.py",
    ]  # fmt: skip

"""minigpt.interpret.hf and ``minigpt verify --against DIR``: transformers' GPT-2, Llama and Qwen2 seen through the
capture's names agree with the reference layer by layer; a mistake planted in transformers is named."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from minigpt import hub
from minigpt.commands.verify import main as verify_main
from minigpt.interpret import activation_names, capture, compare_layers
from minigpt.interpret.hf import load_transformers, transformers_capture, verify_against
from tests.test_hub_llama import GRID as LLAMA_GRID

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

# (class, config): GPT-2 (one with a non-default ε), then the Llama and Qwen2 models test_hub_llama round-trips.
MODELS = [
    ("GPT2", dict(n_layer=3, n_head=4, n_embd=32, vocab_size=97, n_positions=40, layer_norm_epsilon=1e-3)),
    (
        "GPT2",
        dict(n_layer=1, n_head=2, n_embd=16, vocab_size=30, n_positions=32, n_inner=64),
    ),
    *LLAMA_GRID,  # Llama with GQA and MQA, Qwen2 (q/k/v biases), other θ and ε: test_hub_llama's models
]  # fmt: skip


def random_model(hf, kind: str, seed: int, **kwargs):
    """A transformers model with every tensor random (norm gains around 1), so that any mapping mistake shows."""
    import torch

    torch.manual_seed(seed)
    names = {"GPT2": ("GPT2Config", "GPT2LMHeadModel")}.get(kind, (f"{kind}Config", f"{kind}ForCausalLM"))
    config = getattr(hf, names[0])(bos_token_id=None, eos_token_id=None, pad_token_id=None, **kwargs)
    model = getattr(hf, names[1])(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = "norm" in name or "ln_" in name
            p.copy_((1.0 if norm and name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def hf():
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    return transformers


@pytest.fixture(scope="module")
def saved(hf, tmp_path_factory):
    """Each of MODELS with random weights, saved as a Hugging Face directory."""
    dirs = []
    for n, (kind, kwargs) in enumerate(MODELS):
        model = random_model(hf, kind, n, **kwargs)
        path = tmp_path_factory.mktemp(f"{kind}{n}")
        model.save_pretrained(path)
        dirs.append(path)
    return dirs


@pytest.mark.parametrize("n", range(len(MODELS)), ids=[f"{k}-{i}" for i, (k, _) in enumerate(MODELS)])
def test_the_reference_and_transformers_agree_on_every_activation(saved, n):
    report, cfg = verify_against(saved[n])
    assert report.first_divergence is None, report.table()
    assert [r.name for r in report.rows] == activation_names(cfg) and not report.missing
    if MODELS[n][0] == "GPT2":  # all float64 in transformers too (Llama's RMSNorm and softmax run in float32)
        assert max(r.max_rel for r in report.rows) < 1e-12, report.table()


@pytest.mark.parametrize(("n", "plant", "where"), [(0, "gpt2-eps", "h.1.ln_1.out"), (2, "llama-eps", "h.0.ln_1.out"),
                                                   (4, "qwen-bias", "h.1.attn.k")])  # fmt: skip
def test_a_mistake_planted_in_transformers_is_named(hf, saved, n, plant, where):
    import torch

    model = load_transformers(saved[n])
    if plant == "gpt2-eps":
        model.transformer.h[1].ln_1.eps = 1e-1
    elif plant == "llama-eps":
        model.model.layers[0].input_layernorm.variance_epsilon = 1e-1
    else:  # a k_proj bias left out in block 1
        with torch.no_grad():
            model.model.layers[1].self_attn.k_proj.bias.zero_()
    cfg, params = hub.load_pretrained(saved[n], dtype=np.float64)
    idx = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 6))
    report = compare_layers(capture(params, idx, cfg), transformers_capture(model, idx, cfg), rtol=1e-5, atol=1e-8)
    assert report.first_divergence == where, report.table()


def test_verify_against_prints_the_table_and_json(saved, capsys):
    assert verify_main(["--against", str(saved[2])]) == 0
    out = capsys.readouterr().out
    assert "the reference vs transformers" in out and out.rstrip().splitlines()[-1].startswith(
        "all 28 activations agree"
    )
    assert verify_main(["--against", str(saved[0]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and report["first_divergence"] is None and report["rows"][0]["name"] == "h.0.resid_pre"


def test_without_transformers_or_a_directory_it_says_so_in_one_line(saved, capsys, monkeypatch, tmp_path):
    assert verify_main(["--against", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("minigpt verify: error:") and len(err.splitlines()) == 1
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    assert verify_main(["--against", str(saved[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install transformers torch" in err

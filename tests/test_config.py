import json

import pytest
from hypothesis import given

from minigpt import GPTConfig, param_shapes
from minigpt.config import PRESETS
from minigpt.testing.strategies import configs


def test_presets_have_the_promised_shapes():
    baby, small, gpt2 = (GPTConfig.preset(n) for n in ("baby", "small", "gpt2"))
    assert (baby.n_layer, baby.n_head, baby.n_embd, baby.block_size) == (4, 4, 128, 64)
    assert (small.n_layer, small.n_head, small.n_embd, small.block_size) == (6, 6, 384, 256)
    assert (gpt2.n_layer, gpt2.n_head, gpt2.n_embd, gpt2.block_size, gpt2.vocab_size) == (12, 12, 768, 1024, 50257)
    # GPT-2 small is "124M": 124,439,808 parameters with the tied head (published figure).
    assert gpt2.num_params() == 124_439_808
    assert "tiny" in PRESETS


@given(configs())
def test_num_params_counts_every_tensor(cfg):
    expected = sum(int(__import__("math").prod(s)) for s in param_shapes(cfg).values())
    assert cfg.num_params() == expected


@given(configs())
def test_json_round_trip(cfg):
    assert GPTConfig.from_json(cfg.to_json()) == cfg
    assert json.loads(cfg.to_json())["n_embd"] == cfg.n_embd


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"n_embd": 30, "n_head": 4}, ["n_embd=30", "n_head=4", "multiple"]),
        ({"vocab_size": 0}, ["vocab_size", "positive"]),
        ({"block_size": -3}, ["block_size", "positive"]),
        ({"n_layer": 2.5}, ["n_layer", "int"]),
        ({"n_head": True}, ["n_head", "int"]),
        ({"dropout": 1.0}, ["dropout", "[0, 1)"]),
        ({"layer_norm_eps": 0.0}, ["layer_norm_eps", "positive"]),
        ({"bias": "yes"}, ["bias"]),
    ],
)
def test_invalid_values_name_the_field_and_fix(changes, words):
    with pytest.raises(ValueError) as e:
        GPTConfig.preset("tiny", **changes)
    for w in words:
        assert w in str(e.value)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*baby"):
        GPTConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown GPTConfig field.*n_layers"):
        GPTConfig.preset("tiny", n_layers=3)
    with pytest.raises(ValueError, match="unknown GPTConfig field"):
        GPTConfig.from_dict({**GPTConfig.preset("tiny").to_dict(), "colour": 1})


def test_config_is_frozen():
    cfg = GPTConfig.preset("tiny")
    with pytest.raises(AttributeError):
        cfg.n_layer = 5


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"n_head": 4, "n_kv_head": 3}, ["n_head=4", "n_kv_head=3", "[1, 2, 4]"]),
        ({"pos": "alibi"}, ["pos", "'rope'"]),
        ({"norm": "batchnorm"}, ["norm", "'rmsnorm'"]),
        ({"mlp": "relu"}, ["mlp", "'swiglu'"]),
        ({"pos": "rope", "n_embd": 6, "n_head": 2}, ["head size", "odd", "2·n_head"]),
        ({"rope_theta": 1.0}, ["rope_theta", "10000"]),
        ({"mlp_hidden": 0}, ["mlp_hidden", "positive"]),
        ({"tie_embeddings": "no"}, ["tie_embeddings"]),
        ({"qkv_bias": 1}, ["qkv_bias"]),
    ],
)
def test_invalid_llama_options_name_the_field_and_fix(changes, words):
    with pytest.raises(ValueError) as e:
        GPTConfig.preset("tiny", **changes)
    for w in words:
        assert w in str(e.value)


@given(configs(llama=True))
def test_num_params_counts_every_tensor_with_llama_options(cfg):
    assert cfg.num_params() == sum(int(__import__("math").prod(s)) for s in param_shapes(cfg).values())
    assert GPTConfig.from_json(cfg.to_json()) == cfg


def test_old_config_files_without_the_new_fields_load_as_gpt2():
    old = {"vocab_size": 65, "block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "bias": True,
           "dropout": 0.0, "layer_norm_eps": 1e-5}  # fmt: skip
    cfg = GPTConfig.from_dict(old)
    assert cfg == GPTConfig.preset("baby")
    assert (cfg.pos, cfg.norm, cfg.mlp, cfg.kv_heads, cfg.mlp_width, cfg.tie_embeddings) == (
        "learned", "layernorm", "gelu", 4, 512, True,
    )  # fmt: skip


def test_llama_presets():
    tiny, baby = GPTConfig.preset("llama-tiny"), GPTConfig.preset("llama-baby")
    assert tiny.kv_heads < tiny.n_head and not tiny.tie_embeddings and not tiny.bias
    assert (baby.n_layer, baby.n_head, baby.n_embd, baby.block_size) == (4, 4, 128, 64)
    for V in (65, 4618):  # at the preset's and at the reviews' vocabulary: equal parameters within 0.3%
        a, b = GPTConfig.preset("baby", vocab_size=V).num_params(), baby.replace(vocab_size=V).num_params()
        assert abs(a - b) / a < 0.003

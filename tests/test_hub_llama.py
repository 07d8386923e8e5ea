"""minigpt.hub against transformers' LlamaForCausalLM and Qwen2ForCausalLM, offline, on random models of odd
shapes, in both directions: logits, loss and a greedy continuation (transformers' own ``generate`` with its
KV cache versus full forward passes here, and minigpt's JAX KV-cache decoder). Bad configs name their key."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from minigpt import GPT, GPTConfig, hub
from minigpt import reference as ref
from minigpt.generate import generate
from minigpt.params import flatten_params, map_params
from tests.test_hub_gpt2 import JaxRunner, assert_logits_close, greedy, hf_logits

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

N_NEW, PROMPT_LEN = 12, 5

# (class name, config kwargs): GQA and MQA, tied and untied, odd vocabularies and widths, other θ and ε.
GRID = [
    ("Llama", dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, hidden_size=24,
                   intermediate_size=40, vocab_size=53, max_position_embeddings=32, rms_norm_eps=1e-5)),
    ("Llama", dict(num_hidden_layers=1, num_attention_heads=3, num_key_value_heads=1, hidden_size=18,
                   intermediate_size=7, vocab_size=97, max_position_embeddings=24, tie_word_embeddings=True,
                   rope_parameters={"rope_type": "default", "rope_theta": 500.0})),
    ("Qwen2", dict(num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, hidden_size=16,
                   intermediate_size=30, vocab_size=41, max_position_embeddings=20, rms_norm_eps=1e-6,
                   rope_parameters={"rope_type": "default", "rope_theta": 1e6})),
]  # fmt: skip


@pytest.fixture(scope="module")
def hf():
    import torch
    import transformers

    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    return transformers


def random_model(hf, kind: str, seed: int, **kwargs):
    """Every tensor random (norm gains around 1), so that a wrong mapping or transpose of any of them shows."""
    import torch

    torch.manual_seed(seed)
    config = getattr(hf, f"{kind}Config")(bos_token_id=None, eos_token_id=None, pad_token_id=None, **kwargs)
    model = getattr(hf, f"{kind}ForCausalLM")(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = "norm" in name
            p.copy_((1.0 if norm else 0.0) + (0.3 if norm else 0.4) * torch.randn(p.shape, generator=g))
    return model


def hf_loss(model, idx: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        return float(model(torch.from_numpy(idx), labels=torch.from_numpy(idx)).loss)


def hf_greedy(model, prompt: np.ndarray) -> list[int]:
    import torch

    with torch.no_grad():
        out = model.generate(torch.from_numpy(prompt[None]), max_new_tokens=N_NEW, do_sample=False,
                             pad_token_id=0, eos_token_id=None)  # fmt: skip
    return out[0, len(prompt) :].tolist()


def check_parity(model, cfg, params, rng) -> None:
    """Logits (reference and JAX), loss, and greedy continuations (reference, JAX cached decoder) vs transformers."""
    idx = rng.integers(0, cfg.vocab_size, size=(2, min(cfg.block_size, 16)))
    want = hf_logits(model, idx)
    scale = max(1.0, float(np.max(np.abs(want))))
    assert np.max(np.abs(ref.forward(params, idx, cfg).astype(np.float64) - want)) <= 2e-5 * scale
    run = JaxRunner(GPT.from_params(params, cfg), PROMPT_LEN + N_NEW)
    assert_logits_close(run.logits(idx), want, "Flax model vs transformers")
    loss = hf_loss(model, idx)
    np.testing.assert_allclose(float(ref.loss(params, idx[:, :-1], idx[:, 1:], cfg)), loss, rtol=1e-5)
    np.testing.assert_allclose(run(idx[:, :-1], idx[:, 1:])[1], loss, rtol=1e-5)
    prompt = rng.integers(0, cfg.vocab_size, size=PROMPT_LEN)
    theirs = hf_greedy(model, prompt)
    ours, gap = greedy(lambda x: ref.forward(params, x, cfg), prompt, N_NEW)
    assert gap > 1e-3, f"near-tie in greedy decoding (gap {gap:.2g}); this seed does not test token choice"
    assert ours == theirs
    assert generate(params, [list(prompt)], cfg, max_new_tokens=N_NEW, temperature=0, backend="jax")[0] == theirs


@pytest.mark.parametrize(("kind", "kwargs"), GRID, ids=lambda v: v if isinstance(v, str) else "")
def test_transformers_llama_checkpoint_runs_identically_in_minigpt(hf, tmp_path, kind, kwargs):
    seed = kwargs["hidden_size"] + kwargs["vocab_size"]
    model = random_model(hf, kind, seed, **kwargs)
    model.save_pretrained(tmp_path)
    cfg, params = hub.load_pretrained(tmp_path)
    assert (cfg.n_layer, cfg.n_head, cfg.kv_heads, cfg.n_embd, cfg.mlp_width, cfg.vocab_size, cfg.block_size) == (
        kwargs["num_hidden_layers"], kwargs["num_attention_heads"], kwargs["num_key_value_heads"],
        kwargs["hidden_size"], kwargs["intermediate_size"], kwargs["vocab_size"], kwargs["max_position_embeddings"],
    )  # fmt: skip
    assert cfg.rope_theta == kwargs.get("rope_parameters", {}).get("rope_theta", 10000.0)
    assert cfg.tie_embeddings == kwargs.get("tie_word_embeddings", False)
    assert cfg.attn_bias == (kind == "Qwen2") and not cfg.bias
    # the file's weights, transposed to (in, out): q_proj's rows are c_attn's first H·d_k columns
    q = model.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    np.testing.assert_array_equal(params["h"][0]["attn"]["c_attn"]["weight"][:, : q.shape[0]], q.T)
    check_parity(model, cfg, params, np.random.default_rng(seed))


def noisy(cfg, seed, dtype):
    rng = np.random.default_rng(seed)
    return map_params(lambda a: (a + 0.3 * rng.standard_normal(a.shape)).astype(dtype), ref.init_params(cfg, seed))


LLAMA_CFG = GPTConfig.preset("llama-tiny", vocab_size=37, block_size=20, n_layer=2, n_head=6, n_kv_head=2,
                             n_embd=24, mlp_hidden=20, rope_theta=300.0)  # fmt: skip


@pytest.mark.parametrize(
    ("cfg", "dtype", "arch"),
    [
        (LLAMA_CFG, np.float32, "LlamaForCausalLM"),
        (LLAMA_CFG.replace(tie_embeddings=True), np.float64, "LlamaForCausalLM"),
        (LLAMA_CFG.replace(qkv_bias=True, n_kv_head=3), np.float32, "Qwen2ForCausalLM"),
    ],
    ids=["llama-untied-f32", "llama-tied-f64", "qwen2-f32"],
)
def test_minigpt_llama_runs_identically_in_transformers(hf, tmp_path, cfg, dtype, arch):
    import torch

    params = noisy(cfg, 3, dtype)
    hub.save_pretrained(tmp_path, cfg, params)
    assert json.loads((tmp_path / "config.json").read_text())["architectures"] == [arch]
    model, info = hf.AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    model.eval()
    assert type(model).__name__ == arch
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and not info["mismatched_keys"]
    assert model.dtype == {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    if dtype == np.float64:  # the whole block length; transformers' RoPE angles are float32 even in a float64 model
        idx = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(2, cfg.block_size))
        want = ref.forward(params, idx, cfg)
        assert np.max(np.abs(hf_logits(model, idx) - want)) <= 2e-6 * max(1.0, float(np.max(np.abs(want))))
        model, params = model.float(), map_params(lambda a: a.astype(np.float32), params)
    check_parity(model, cfg, params, np.random.default_rng(1))
    cfg2, params2 = hub.load_pretrained(tmp_path)  # and back, bit for bit
    assert cfg2 == cfg
    got = flatten_params(params2)
    for name, value in flatten_params(noisy(cfg, 3, dtype)).items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


@pytest.fixture
def ckpt(tmp_path):
    hub.save_pretrained(tmp_path, LLAMA_CFG, noisy(LLAMA_CFG, 0, np.float32))
    return tmp_path


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"hidden_act": "gelu"}, "hidden_act"),
        ({"attention_bias": True}, "attention_bias"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}}, "rope_type"),
        ({"rope_scaling": {"type": "dynamic", "factor": 2.0}}, "rope_scaling"),
        ({"head_dim": 8}, "head_dim"),
        ({"num_key_value_heads": 4}, "n_kv_head"),
        ({"architectures": ["LlamaForSequenceClassification"]}, "architectures"),
        ({"model_type": "qwen2", "architectures": None}, "q_proj.bias"),  # Qwen2 has q/k/v biases, this file not
        ({"model_type": "qwen2", "architectures": None, "use_sliding_window": True}, "use_sliding_window"),
        ({"intermediate_size": 21}, "intermediate_size"),
        ({"tie_word_embeddings": True}, "lm_head.weight"),
    ],
)
def test_bad_llama_config_names_the_key(ckpt, changes, key):
    config = json.loads((ckpt / "config.json").read_text())
    config.update(changes)
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=key):
        hub.load_pretrained(ckpt)


def test_save_refuses_models_no_checkpoint_format_expresses(tmp_path):
    for cfg in (LLAMA_CFG.replace(norm="layernorm"), GPTConfig.preset("tiny", n_kv_head=1)):
        with pytest.raises(ValueError, match="neither GPT-2 nor Llama|rmsnorm"):
            hub.save_pretrained(tmp_path / "x", cfg, ref.init_params(cfg))
        assert not (tmp_path / "x").exists()

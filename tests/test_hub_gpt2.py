"""minigpt.hub against the real thing: transformers' GPT2LMHeadModel and GPT2Tokenizer, loaded offline.

Parity is checked in both directions on random models (no download): logits, loss and a 20-token greedy
continuation (transformers' own ``generate`` with its KV cache versus full forward passes here).
Bad checkpoints must fail with errors that name the file, key or tensor; no pickle is ever loaded.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from minigpt import GPT, GPTConfig, hub
from minigpt import reference as ref
from minigpt.params import flatten_params, params_dtype, unflatten_params

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

N_NEW = 20
PROMPT_LEN = 6

# Small GPT-2 shapes: layers, heads, widths (incl. a head size of 8 with 3 heads), vocab, n_positions,
# a non-default ε, the other tanh-GELU name and an explicit n_inner = 4C.
HF_GRID = [
    dict(n_layer=1, n_head=1, n_embd=8, vocab_size=17, n_positions=PROMPT_LEN + N_NEW),
    dict(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=30),
    dict(n_layer=3, n_head=4, n_embd=32, vocab_size=97, n_positions=40, layer_norm_epsilon=1e-3),
    dict(n_layer=2, n_head=3, n_embd=24, vocab_size=64, n_positions=64, activation_function="gelu_pytorch_tanh"),
    dict(n_layer=1, n_head=2, n_embd=16, vocab_size=301, n_positions=32, n_inner=64, tie_word_embeddings=False),
]


@pytest.fixture(scope="module")
def hf():
    """transformers (and torch) imported once; part of the dev extra, so a missing install fails loudly."""
    import torch
    import transformers

    torch.set_num_threads(1)  # the CI box has 2 cores shared with other test modules
    transformers.logging.set_verbosity_error()
    return transformers


def random_hf_model(hf, seed: int, **kwargs):
    """A GPT2LMHeadModel with every tensor (biases and LayerNorm gains included) random, so that a wrong
    mapping of any tensor shows, and logits spread enough that greedy decoding has clear winners."""
    import torch

    torch.manual_seed(seed)
    config = hf.GPT2Config(bos_token_id=None, eos_token_id=None, **kwargs)
    model = hf.GPT2LMHeadModel(config).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            scale = 0.5 if ("ln_" in name and name.endswith("weight")) else 0.3
            base = 1.0 if ("ln_" in name and name.endswith("weight")) else 0.0
            p.copy_(base + scale * torch.randn(p.shape, generator=g))
        if not config.tie_word_embeddings:
            model.lm_head.weight.copy_(model.transformer.wte.weight)
    return model


def hf_logits(model, idx: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(idx.astype(np.int64))).logits.numpy()


def greedy(logits_fn, prompt: np.ndarray, n_new: int) -> tuple[list[int], float]:
    """argmax decoding with a full forward pass per token; also the smallest top-1/top-2 logit gap seen."""
    seq = list(prompt)
    gap = np.inf
    for _ in range(n_new):
        last = np.asarray(logits_fn(np.array([seq])))[0, -1]  # (V,)
        top2 = np.sort(last)[-2:]
        gap = min(gap, float(top2[1] - top2[0]))
        seq.append(int(np.argmax(last)))
    return seq[len(prompt) :], gap


class JaxRunner:
    """The Flax model's logits and ``model.loss`` from ONE jitted call on inputs padded on the right to a fixed
    (2, length): jit compiles once per model. Causality keeps position t independent of the padding after
    it, and padded targets are ignore_index, so both results are those of the unpadded input."""

    def __init__(self, model: GPT, length: int):
        self.model, self.length = model, length
        self.step = jax.jit(lambda m, x, y: (m(x), m.loss(x, y)))

    def __call__(self, idx: np.ndarray, targets: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        B, T = idx.shape
        x = np.zeros((2, self.length), np.int32)
        y = np.full((2, self.length), -1, np.int32)
        x[:B, :T] = idx
        if targets is None:
            y[0, 0] = 0  # a loss nobody reads, over one kept target (the mean over none is undefined)
        else:
            y[:B, :T] = targets
        logits, loss = self.step(self.model, x, y)
        return np.asarray(logits)[:B, :T], float(loss)

    def logits(self, idx: np.ndarray) -> np.ndarray:
        return self(idx)[0]


def assert_logits_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(got - want)))
    assert err <= 2e-5 * scale, f"{what}: max |Δlogits| = {err:.3g} (logit scale {scale:.3g})"


@pytest.mark.parametrize(
    "kwargs", HF_GRID, ids=lambda k: "L{n_layer}H{n_head}C{n_embd}V{vocab_size}T{n_positions}".format(**k)
)
def test_transformers_checkpoint_runs_identically_in_minigpt(hf, tmp_path, kwargs, monkeypatch):
    import torch

    seed = sum(kwargs[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size"))
    model = random_hf_model(hf, seed, **kwargs)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()

    def no_pickles(*args, **kw):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(pickle, "load", no_pickles)
    monkeypatch.setattr(pickle, "loads", no_pickles)
    monkeypatch.setattr(torch, "load", no_pickles)
    cfg, params = hub.load_pretrained(tmp_path)
    monkeypatch.undo()

    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.vocab_size, cfg.block_size) == tuple(
        kwargs[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions")
    )
    assert cfg.layer_norm_eps == kwargs.get("layer_norm_epsilon", 1e-5)
    assert cfg.bias and cfg.dropout == 0.1
    # The weights are the file's, bit for bit: HF names and (in, out) Conv1D layout, no transposes.
    c_fc = model.transformer.h[0].mlp.c_fc.weight.detach().numpy()
    np.testing.assert_array_equal(params["h"][0]["mlp"]["c_fc"]["weight"], c_fc)

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg.vocab_size, size=(2, min(cfg.block_size, 24)))
    want = hf_logits(model, idx)
    # As a new user writes it: the checkpoint says dropout 0.1 (GPT-2 pretraining), yet a model built from
    # params is in inference mode without further calls, like transformers' from_pretrained.
    jmodel = GPT.from_params(*hub.load_pretrained(tmp_path))
    assert_logits_close(ref.forward(params, idx, cfg), want, "NumPy reference vs transformers")
    jax_run = JaxRunner(jmodel, max(idx.shape[1], PROMPT_LEN + N_NEW))
    assert_logits_close(jax_run.logits(idx), want, "Flax model vs transformers")

    # transformers shifts labels internally: loss(idx, labels=idx) = CE(logits[:, :-1], idx[:, 1:]).
    with torch.no_grad():
        hf_loss = float(model(torch.from_numpy(idx), labels=torch.from_numpy(idx)).loss)
    np.testing.assert_allclose(float(ref.loss(params, idx[:, :-1], idx[:, 1:], cfg)), hf_loss, rtol=1e-5)
    np.testing.assert_allclose(jax_run(idx[:, :-1], idx[:, 1:])[1], hf_loss, rtol=1e-5)

    prompt = rng.integers(0, cfg.vocab_size, size=PROMPT_LEN)
    with torch.no_grad():
        out = model.generate(
            torch.from_numpy(prompt[None]), max_new_tokens=N_NEW, do_sample=False, pad_token_id=0, eos_token_id=None
        )
    hf_new = out[0, PROMPT_LEN:].tolist()
    ref_new, gap = greedy(lambda x: ref.forward(params, x, cfg), prompt, N_NEW)
    jax_new, _ = greedy(jax_run.logits, prompt, N_NEW)
    assert gap > 1e-3, f"near-tie in greedy decoding (gap {gap:.2g}); this seed does not test token choice"
    assert ref_new == hf_new
    assert jax_new == hf_new


def perturbed_params(cfg: GPTConfig, seed: int, dtype=np.float32):
    """init_params moved off its zeros/ones so biases and LayerNorm gains are tested too."""
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, seed=seed, dtype=dtype)
    flat = {k: (v + 0.2 * rng.standard_normal(v.shape)).astype(dtype) for k, v in flatten_params(params).items()}
    return unflatten_params(flat)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minigpt_checkpoint_runs_identically_in_transformers(hf, tmp_path, dtype):
    import torch

    cfg = GPTConfig(vocab_size=41, block_size=32, n_layer=2, n_head=4, n_embd=16, layer_norm_eps=1e-4)
    params = perturbed_params(cfg, seed=3, dtype=dtype)
    hub.save_pretrained(tmp_path, cfg, params)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]

    model, info = hf.GPT2LMHeadModel.from_pretrained(tmp_path, output_loading_info=True)
    model.eval()
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and not info["mismatched_keys"]
    assert model.dtype == {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # tied, as in minigpt

    idx = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(2, cfg.block_size))
    want = ref.forward(params, idx, cfg)
    got = hf_logits(model, idx)
    tol = 1e-10 if dtype == np.float64 else 2e-5
    assert np.max(np.abs(got - want)) <= tol * max(1.0, float(np.max(np.abs(want))))

    # And back: minigpt reads its own output bit for bit.
    cfg2, params2 = hub.load_pretrained(tmp_path)
    assert cfg2 == cfg
    for name, value in flatten_params(params).items():
        np.testing.assert_array_equal(flatten_params(params2)[name], value, err_msg=name)


def test_trained_minigpt_params_survive_the_round_trip_through_transformers(hf, tmp_path):
    """minigpt params → transformers, three SGD steps there, saved by transformers → minigpt: same logits."""
    import torch

    cfg = GPTConfig(vocab_size=23, block_size=16, n_layer=1, n_head=2, n_embd=8)
    params = perturbed_params(cfg, seed=5)
    hub.save_pretrained(tmp_path / "a", cfg, params)
    model = hf.GPT2LMHeadModel.from_pretrained(tmp_path / "a")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    idx = torch.from_numpy(np.random.default_rng(1).integers(0, cfg.vocab_size, size=(4, 16)))
    model.train(False)
    for _ in range(3):
        opt.zero_grad()
        model(idx, labels=idx).loss.backward()
        opt.step()
    model.save_pretrained(tmp_path / "b")
    cfg_b, params_b = hub.load_pretrained(tmp_path / "b")
    assert cfg_b == cfg
    assert not np.array_equal(params_b["wte"]["weight"], params["wte"]["weight"])  # training moved it
    assert_logits_close(ref.forward(params_b, idx.numpy(), cfg), hf_logits(model, idx.numpy()), "after training")


# -- tokenizer files ----------------------------------------------------------------------------------

TEXTS = [
    "这款手机的性能非常好，电池也很耐用。",
    "屏幕清晰，价格实惠，物流很快，五星好评！",
    "质量一般，客服态度差，不推荐购买。",
    "The phone is great, battery life is good. 👍",
]


class TokenizersAdapter:
    """Duck-typed stand-in for minigpt's BPE: only ``save(dir)`` writing GPT-2's vocab.json + merges.txt."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def save(self, directory: str) -> None:
        self.tokenizer.model.save(directory)


def train_bpe(vocab_size: int, special: list[str]):
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(TEXTS * 20, vocab_size=vocab_size, min_frequency=1, special_tokens=special)
    return tok


@pytest.mark.parametrize("special", [["<|endoftext|>"], []], ids=["with-eot", "no-eot"])
def test_tokenizer_files_load_in_transformers_with_identical_ids(hf, tmp_path, special):
    bpe = train_bpe(400, special)
    n = bpe.get_vocab_size()
    cfg = GPTConfig(vocab_size=n, block_size=64, n_layer=1, n_head=2, n_embd=8)
    hub.save_pretrained(tmp_path, cfg, ref.init_params(cfg, seed=0), tokenizer=TokenizersAdapter(bpe))

    text = "这款手机的性能非常好，" + TEXTS[3] + " 没见过的字：龘"
    for cls in (hf.GPT2Tokenizer, hf.AutoTokenizer):
        tok = cls.from_pretrained(tmp_path)
        assert len(tok) == n  # no token appended beyond the model's vocabulary
        ids = tok.encode(text)
        assert ids == bpe.encode(text).ids
        assert max(ids) < cfg.vocab_size
        assert tok.decode(ids) == text
        assert tok.model_max_length == cfg.block_size
    model = hf.GPT2LMHeadModel.from_pretrained(tmp_path)
    eot = bpe.token_to_id("<|endoftext|>")
    assert model.config.eos_token_id == eot and tok.eos_token_id == eot


def test_tokenizer_larger_than_the_model_is_refused_and_nothing_is_written(tmp_path):
    bpe = train_bpe(300, ["<|endoftext|>"])
    cfg = GPTConfig(vocab_size=bpe.get_vocab_size() - 1, block_size=8, n_layer=1, n_head=1, n_embd=4)
    with pytest.raises(ValueError, match="vocab_size"):
        hub.save_pretrained(tmp_path, cfg, ref.init_params(cfg), tokenizer=TokenizersAdapter(bpe))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="save"):
        hub.save_pretrained(tmp_path, cfg, ref.init_params(cfg), tokenizer=object())


# -- bad input (no transformers needed) ---------------------------------------------------------------

TINY = GPTConfig(vocab_size=19, block_size=8, n_layer=2, n_head=2, n_embd=8)


@pytest.fixture
def ckpt(tmp_path) -> Path:
    path = tmp_path / "ckpt"
    hub.save_pretrained(path, TINY, perturbed_params(TINY, seed=0))
    return path


def edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


def edit_tensors(path: Path, fn) -> None:
    tensors = load_file(path / "model.safetensors")
    fn(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def test_missing_directory_and_files(tmp_path, ckpt):
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        hub.load_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="pass the checkpoint directory"):
        hub.load_pretrained(ckpt / "config.json")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        hub.load_pretrained(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        hub.load_pretrained(ckpt)


class _Exploit:
    """Unpickling this creates a directory: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pytorch_bin_alone_is_never_unpickled(ckpt, tmp_path):
    marker = tmp_path / "pwned"
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(FileNotFoundError, match=r"pytorch_model\.bin.*never unpickles(?s:.*)save_pretrained"):
        hub.load_pretrained(ckpt)
    assert not marker.exists()


def test_truncated_or_corrupt_files_name_the_file(ckpt):
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors.*truncated"):
        hub.load_pretrained(ckpt)
    (ckpt / "model.safetensors").write_bytes(data[:5])
    with pytest.raises(ValueError, match=r"model\.safetensors.*truncated"):
        hub.load_pretrained(ckpt)
    (ckpt / "model.safetensors").write_bytes(data)
    (ckpt / "config.json").write_text('{"model_type": "gpt2", "n_emb')
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        hub.load_pretrained(ckpt)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.update({"transformer.h.1.mlp.c_fc.weight": np.zeros((8, 33), np.float32)}),
            r"'transformer\.h\.1\.mlp\.c_fc\.weight' has shape \(8, 33\).*\(8, 32\)",
        ),
        (lambda t: t.pop("transformer.h.0.ln_2.bias"), r"no tensor 'transformer\.h\.0\.ln_2\.bias'"),
        (lambda t: t.update({"score.weight": np.zeros((2, 8), np.float32)}), r"'score\.weight'"),
        (
            lambda t: t.update({"transformer.h.2.ln_1.weight": np.ones(8, np.float32)}),
            r"'transformer\.h\.2\.ln_1\.weight'",
        ),
        (
            lambda t: t.update({"wte.weight": t["transformer.wte.weight"]}),
            r"both 'transformer\.wte\.weight' and 'wte\.weight'",
        ),
        (lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"] + 1}), r"'lm_head\.weight'.*untied.*ties"),
        (lambda t: t.update({"transformer.ln_f.bias": t["transformer.ln_f.bias"].astype(np.float16)}), r"mix dtypes"),
    ],
    ids=["shape", "missing", "unexpected", "extra-layer", "duplicate", "untied-head", "mixed-dtype"],
)
def test_bad_tensors_are_named(ckpt, edit, message):
    edit_tensors(ckpt, edit)
    with pytest.raises(ValueError, match=message):
        hub.load_pretrained(ckpt)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"architectures": ["GPT2ForSequenceClassification"]}, "architectures"),
        ({"model_type": "bert"}, "model_type"),
        ({"model_type": None}, "model_type"),
        ({"activation_function": "relu"}, "activation_function"),
        ({"activation_function": "gelu"}, "activation_function"),  # erf GELU: close, but not the same function
        ({"n_inner": 24}, "n_inner"),
        ({"scale_attn_weights": False}, "scale_attn_weights"),
        ({"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
        ({"reorder_and_upcast_attn": True}, "reorder_and_upcast_attn"),
        ({"add_cross_attention": True}, "add_cross_attention"),
        ({"n_embd": "8"}, "n_embd"),
        ({"n_head": 3}, "n_head"),
        ({"layer_norm_epsilon": -1.0}, "layer_norm_epsilon"),
        ({"resid_pdrop": 0.3}, "pdrop"),
        ({"n_positions": 16}, r"transformer\.wpe\.weight"),
    ],
)
def test_bad_config_names_the_key(ckpt, changes, key):
    edit_config(ckpt, **changes)
    with pytest.raises(ValueError, match=key):
        hub.load_pretrained(ckpt)


def test_config_edge_cases_that_are_fine(ckpt):
    edit_config(ckpt, n_inner=32, activation_function="gelu_pytorch_tanh", resid_pdrop=0.0)
    cfg, _ = hub.load_pretrained(ckpt, dropout=0.25)
    assert cfg == TINY.replace(dropout=0.25)
    config = json.loads((ckpt / "config.json").read_text())
    config["n_ctx"] = config.pop("n_positions")  # very old configs
    (ckpt / "config.json").write_text(json.dumps(config))
    cfg, params = hub.load_pretrained(ckpt, dtype=np.float16)
    assert cfg.block_size == TINY.block_size and params_dtype(params) == np.float16


def test_openai_style_names_and_buffers_load(ckpt, tmp_path):
    """OpenAI's gpt2 checkpoint has no 'transformer.' prefix, keeps the causal-mask buffers and an equal head."""
    _, want = hub.load_pretrained(ckpt)

    def legacy(t):
        for name in list(t):
            t[name.removeprefix("transformer.")] = t.pop(name)
        for i in range(TINY.n_layer):
            t[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 8, 8), np.float32))
            t[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
        t["lm_head.weight"] = t["wte.weight"].copy()

    edit_tensors(ckpt, legacy)
    edit_config(ckpt, tie_word_embeddings=False)
    _, got = hub.load_pretrained(ckpt)
    for name, value in flatten_params(want).items():
        np.testing.assert_array_equal(flatten_params(got)[name], value, err_msg=name)

    edit_tensors(ckpt, lambda t: t.pop("lm_head.weight"))
    with pytest.raises(ValueError, match=r"tie_word_embeddings.*lm_head\.weight"):
        hub.load_pretrained(ckpt)


def test_sharded_checkpoint(ckpt):
    _, want = hub.load_pretrained(ckpt)
    tensors = load_file(ckpt / "model.safetensors")
    tensors["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8), np.float32))  # a buffer, skipped
    (ckpt / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, ckpt / shard, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    _, got = hub.load_pretrained(ckpt)
    for name, value in flatten_params(want).items():
        np.testing.assert_array_equal(flatten_params(got)[name], value, err_msg=name)
    index["weight_map"]["transformer.ghost.weight"] = "model-00001-of-00002.safetensors"
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"'transformer\.ghost\.weight' is listed"):
        hub.load_pretrained(ckpt)
    (ckpt / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002"):
        hub.load_pretrained(ckpt)


def test_save_refuses_bias_free_models_and_bad_params(tmp_path):
    cfg = TINY.replace(bias=False)
    with pytest.raises(ValueError, match="bias=False"):
        hub.save_pretrained(tmp_path / "x", cfg, ref.init_params(cfg))
    assert not (tmp_path / "x").exists()
    params = ref.init_params(TINY)
    params["h"][1]["attn"]["c_proj"]["weight"] = np.zeros((8, 9), np.float32)
    with pytest.raises(ValueError, match=r"h\.1\.attn\.c_proj\.weight"):
        hub.save_pretrained(tmp_path / "x", TINY, params)


def test_failed_save_leaves_the_previous_checkpoint_intact(ckpt, monkeypatch):
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr("safetensors.numpy.save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        hub.save_pretrained(ckpt, TINY, perturbed_params(TINY, seed=1))
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before  # no temp directory left either


def test_jax_arrays_and_bfloat16_round_trip(tmp_path):
    import ml_dtypes

    params = perturbed_params(TINY, seed=2)
    model = GPT.from_params(params, TINY)
    hub.save_pretrained(tmp_path / "f32", TINY, model.to_params())
    _, got = hub.load_pretrained(tmp_path / "f32")
    np.testing.assert_array_equal(got["h"][1]["mlp"]["c_proj"]["bias"], params["h"][1]["mlp"]["c_proj"]["bias"])
    bf16 = unflatten_params({k: v.astype(ml_dtypes.bfloat16) for k, v in flatten_params(params).items()})
    hub.save_pretrained(tmp_path / "bf16", TINY, bf16)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"
    _, got = hub.load_pretrained(tmp_path / "bf16")
    assert params_dtype(got) == np.dtype(ml_dtypes.bfloat16)
    np.testing.assert_array_equal(got["wte"]["weight"], bf16["wte"]["weight"])


def test_importing_hub_imports_neither_torch_nor_transformers():
    code = "import sys, minigpt.hub; print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1]
    )
    assert out.stdout.strip() == "[]"


def test_minigpt_bpe_saved_with_the_model_loads_in_transformers_and_back(hf, tmp_path):
    """#4's ByteLevelBPE through save_pretrained: HF gives the same ids, and from_files reads the files back."""
    from minigpt.tokenizers import ByteLevelBPE

    bpe = ByteLevelBPE.train(TEXTS * 20, vocab_size=400, special_tokens=["<|endoftext|>"])
    cfg = GPTConfig(vocab_size=bpe.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=8)
    params = ref.init_params(cfg, seed=1)
    hub.save_pretrained(tmp_path, cfg, params, tokenizer=bpe)
    text = "这款手机的性能非常好，" + TEXTS[3] + " 没见过的字：龘<|endoftext|>"
    tok = hf.GPT2Tokenizer.from_pretrained(tmp_path)
    assert tok.encode(text) == bpe.encode(text)
    assert tok.decode(bpe.encode(text)) == text

    # the README's recipe: load checkpoint + tokenizer files, continue a prompt greedily with the reference
    cfg2, params2 = hub.load_pretrained(tmp_path)
    tok2 = ByteLevelBPE.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    seq = tok2.encode("这款手机的性能非常好，")
    assert seq == bpe.encode("这款手机的性能非常好，")
    for _ in range(5):
        logits = ref.forward(params2, np.array([seq[-cfg2.block_size :]]), cfg2)
        seq.append(int(logits[0, -1].argmax()))
    model = hf.GPT2LMHeadModel.from_pretrained(tmp_path)
    import torch

    prompt = torch.tensor([seq[:-5]])
    want = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=bpe.eot_id).tolist()[0]
    assert seq == want

"""The JAX twin with the Llama options ≡ the NumPy reference: forward (float64 and float32), the KV cache with
n_kv_head heads (prefill + steps, ragged prompts), gradients, and decoding (greedy, beam search, bans)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.generate import BannedPhrases, JaxDecoder, ReferenceDecoder, beam_search, generate, prepare_prompts
from minigpt.model import KVCache, apply, cross_entropy
from minigpt.params import flatten_params, map_params, param_shapes
from minigpt.testing.strategies import config_and_tokens, configs, seeds, token_batches

JAX_EXAMPLES = settings(max_examples=6, deadline=None)


def noisy(cfg, seed, dtype=np.float64, scale=0.3):
    """Every tensor (gains and biases included) moved off its init, so a wrong mapping of any of them shows."""
    rng = np.random.default_rng(seed)
    p = ref.init_params(cfg, seed=seed, dtype=np.float64)
    return map_params(lambda a: (a + rng.normal(0.0, scale, a.shape)).astype(dtype), p)


@JAX_EXAMPLES
@given(config_and_tokens(llama=True, max_layers=2), seeds(), st.booleans(), st.booleans())
def test_apply_with_llama_options_is_the_reference_forward_float64(x64, cfg_idx, seed, fast, remat):
    cfg, idx = cfg_idx
    params = noisy(cfg, seed % 1000)
    got = jax.jit(lambda p, x: apply(p, x, cfg, fast=fast, remat=remat))(params, idx)
    np.testing.assert_allclose(np.asarray(got), ref.forward(params, idx, cfg), rtol=1e-9, atol=1e-10)


@JAX_EXAMPLES
@given(config_and_tokens(llama=True, max_layers=2), seeds())
def test_apply_with_llama_options_is_the_reference_forward_float32(cfg_idx, seed):
    """float32 on both sides, each rounding its own way: stated tolerance 1e-4 of the logit scale."""
    cfg, idx = cfg_idx
    params = noisy(cfg, seed % 1000, np.float32)
    got = np.asarray(jax.jit(lambda p, x: apply(p, x, cfg, fast=False))(params, idx))
    want = ref.forward(params, idx, cfg)
    assert got.dtype == want.dtype == np.float32
    assert np.max(np.abs(got - want)) <= 1e-4 * max(1.0, float(np.max(np.abs(want))))


@st.composite
def grouped_configs_and_tokens(draw):
    """Configs with n_kv_head < n_head always, the case the cache must get right."""
    cfg = draw(configs(llama=True, max_layers=2, max_heads=4).filter(lambda c: c.kv_heads < c.n_head))
    return cfg, draw(token_batches(cfg))


@JAX_EXAMPLES
@given(st.one_of(grouped_configs_and_tokens(), config_and_tokens(llama=True, max_layers=2)), seeds())
def test_cache_holds_kv_heads_and_cached_decoding_equals_the_full_forward(x64, cfg_idx, seed):
    cfg, idx = cfg_idx
    params = noisy(cfg, seed % 1000)
    B, T = idx.shape
    cache = KVCache.init(cfg, B, T, jnp.float64)
    assert cache.layers[0][0].shape == (B, cfg.kv_heads, T, cfg.head_size)
    step = jax.jit(lambda p, x, c: apply(p, x, cfg, cache=c))
    P = max(1, T // 2)
    logits, cache = step(params, idx[:, :P], cache)
    pieces = [np.asarray(logits)]
    for t in range(P, T):
        logits, cache = step(params, idx[:, t : t + 1], cache)
        pieces.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(pieces, 1), ref.forward(params, idx, cfg), rtol=1e-9, atol=1e-10)


LLAMA = GPTConfig.preset("llama-tiny", vocab_size=11, block_size=16, n_head=4, n_kv_head=2, n_embd=16, rope_theta=50.0)
PROMPTS = [[1, 2, 3, 4, 5], [7, 8], [9, 0, 10, 3, 3, 6, 2]]  # different lengths → left padding, RoPE offsets


def test_ragged_prompts_decode_with_the_full_forward_numbers_in_both_decoders(x64):
    """Left padding shifts slots, not positions: each row's RoPE angles come from KVCache.positions."""
    params = noisy(LLAMA, 0)
    tokens, start, rows = prepare_prompts(PROMPTS, LLAMA, max_new_tokens=5)
    rng = np.random.default_rng(1)
    for cls in (ReferenceDecoder, JaxDecoder):
        seqs = [list(r) for r in rows]
        decoder = cls(params, LLAMA)
        logits = decoder.prefill(tokens, start, tokens.shape[1] + 5)
        for _ in range(5):
            truth = np.stack([ref.forward(params, np.array([s]), LLAMA)[0, -1] for s in seqs])
            np.testing.assert_allclose(np.asarray(logits), truth, rtol=0, atol=1e-10, err_msg=cls.__name__)
            nxt = rng.integers(0, LLAMA.vocab_size, size=len(seqs))
            seqs = [s + [int(t)] for s, t in zip(seqs, nxt, strict=True)]
            logits = decoder.step(nxt)


def brute_greedy(params, cfg, prompt, n):
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(np.argmax(ref.forward(params, np.array([seq]), cfg)[0, -1])))
    return seq[len(prompt) :]


def test_greedy_beam_search_and_bans_work_unchanged_with_llama(x64):
    params = noisy(LLAMA, 3, scale=0.6)
    truth = [brute_greedy(params, LLAMA, p, 6) for p in PROMPTS]
    for backend in ("numpy", "jax"):
        assert generate(params, PROMPTS, LLAMA, max_new_tokens=6, temperature=0, backend=backend) == truth
    kw = dict(num_beams=3, max_new_tokens=4, num_return=3)
    a = beam_search(params, PROMPTS[0], LLAMA, backend="numpy", **kw)
    b = beam_search(params, PROMPTS[0], LLAMA, backend="jax", **kw)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-10)
    assert beam_search(params, PROMPTS[0], LLAMA, num_beams=1, max_new_tokens=6)[0].tokens == truth[0]
    # ban the greedy continuation's first two tokens as a phrase: it must not appear, and the first token stays
    pieces = [bytes([ord("A") + i]) for i in range(LLAMA.vocab_size)]  # token i is the letter A + i
    bans = BannedPhrases(["".join(chr(ord("A") + t) for t in truth[0][:2])], pieces)
    for backend in ("numpy", "jax"):
        out = generate(params, [PROMPTS[0]], LLAMA, max_new_tokens=6, temperature=0, backend=backend, bans=bans)[0]
        assert out[0] == truth[0][0] and out[:2] != truth[0][:2]


def test_loss_and_grads_match_jax_grad_with_llama_options_float64(x64):
    for cfg in (LLAMA, LLAMA.replace(tie_embeddings=True, qkv_bias=True, n_kv_head=1, mlp_hidden=24)):
        params = noisy(cfg, 5)
        rng = np.random.default_rng(5)
        idx = rng.integers(0, cfg.vocab_size, size=(2, 9))
        targets = rng.integers(0, cfg.vocab_size, size=(2, 9))
        loss, grads = ref.loss_and_grads(params, idx, targets, cfg)

        def loss_of(p, idx=idx, targets=targets, cfg=cfg):
            return cross_entropy(apply(p, idx, cfg, fast=False), targets)

        jloss, jgrads = jax.jit(jax.value_and_grad(loss_of))(params)  # one program, not every op compiled alone
        np.testing.assert_allclose(float(jloss), loss, rtol=1e-12)
        theirs = flatten_params(jgrads)
        for name, g in flatten_params(grads).items():
            err = np.linalg.norm(g - np.asarray(theirs[name])) / max(np.linalg.norm(g), 1e-30)
            assert err < 1e-9, f"{name}: {err:.2e}"


def test_layout_names_the_new_tensors_and_leaves_gpt2_alone():
    shapes = param_shapes(LLAMA)
    C, F, d = LLAMA.n_embd, LLAMA.mlp_width, LLAMA.head_size
    assert "wpe.weight" not in shapes and shapes["lm_head.weight"] == (C, LLAMA.vocab_size)
    assert shapes["h.0.attn.c_attn.weight"] == (C, (4 + 2 * 2) * d)
    assert shapes["h.1.mlp.c_gate.weight"] == shapes["h.1.mlp.c_fc.weight"] == (C, F)
    assert not any(n.endswith(".bias") for n in shapes)
    qwen = param_shapes(LLAMA.replace(qkv_bias=True))
    assert [n for n in qwen if n.endswith(".bias")] == [f"h.{i}.attn.c_attn.bias" for i in range(LLAMA.n_layer)]

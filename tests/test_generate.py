"""Decoding: KV cache vs full forward, strategies, beam search vs brute force, bans, streaming, CLI.

Independent computations used as the truth: ``minigpt.reference.model.forward`` on the unpadded
sequence (for every cached step), brute-force enumeration (beam search), hand-made logits (filters),
and a "script" model built by hand whose greedy output is known in advance (bans, stop tokens).
"""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.commands.sample import build_parser, run_sample
from minigpt.generate import (
    BannedPhrases,
    JaxDecoder,
    ReferenceDecoder,
    TextStream,
    apply_repetition_penalty,
    beam_search,
    beam_search_text,
    generate,
    generate_text,
    prepare_prompts,
    stream,
    stream_text,
    top_k_filter,
    top_p_filter,
)
from minigpt.generate.processors import sample_numpy
from minigpt.params import map_params
from minigpt.reference.functional import log_softmax

# --------------------------------------------------------------------------------------------------
# fixtures: tiny tokenizers and models


class PieceTokenizer:
    """Greedy longest-match over a list of pieces (strings); ids are list positions."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces
        self.vocab_size = len(pieces)

    def encode(self, text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            best = max((p for p in self.pieces if text.startswith(p, i)), key=len, default=None)
            if best is None:
                raise ValueError(f"character {text[i]!r} is not in the vocabulary")
            ids.append(self.pieces.index(best))
            i += len(best)
        return ids

    def decode(self, ids) -> str:
        return "".join(self.pieces[int(i)] for i in ids)


class ByteTokenizer:
    """Byte-level: id = byte value, so a Chinese character is three tokens."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


class ByteTokenizerWithBytes(ByteTokenizer):
    """As a real byte-level tokenizer should: exact bytes per token, for text-level bans."""

    def decode_bytes(self, ids) -> bytes:
        return bytes(int(i) for i in ids)


def noisy_params(cfg: GPTConfig, seed: int, scale: float = 0.3, dtype=np.float64):
    """Random weights far from GPT-2's tiny init, so logits are sharp and errors are not hidden."""
    rng = np.random.default_rng(seed)
    p = ref.init_params(cfg, seed=seed, dtype=np.float64)
    return map_params(lambda a: (a + rng.normal(0.0, scale, a.shape)).astype(dtype), p)


def script_params(cfg: GPTConfig, script: list[int], seed: int = 0, dtype=np.float64):
    """A model that predicts ``script[t]`` at position t whatever the input: the blocks add nothing
    (output projections zero) and wpe[t] is a large multiple of wte[script[t]], so the tied head's
    logit for script[t] is ≈ √C·4 = 32 and every other logit is ≈ ±4."""
    rng = np.random.default_rng(seed)
    p = ref.init_params(cfg, seed=seed, dtype=np.float64)
    wte = rng.standard_normal((cfg.vocab_size, cfg.n_embd))
    wte -= wte.mean(axis=1, keepdims=True)
    wte *= 4.0 / np.linalg.norm(wte, axis=1, keepdims=True)
    wpe = np.zeros((cfg.block_size, cfg.n_embd))
    for t, s in enumerate(script):
        wpe[t] = 100.0 * wte[s]
    p["wte"]["weight"], p["wpe"]["weight"] = wte, wpe
    for block in p["h"]:
        block["attn"]["c_proj"]["weight"][:] = 0.0
        block["mlp"]["c_proj"]["weight"][:] = 0.0
    return map_params(lambda a: a.astype(dtype), p)


CACHE_CFG = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=16)
PROMPTS = [[1, 2, 3, 4, 5], [7, 8], [9, 0, 10, 3, 3, 6, 2]]  # different lengths → left padding


def full_forward_last(params, cfg, seq) -> np.ndarray:
    """The truth: logits of the next token from the reference forward pass on the unpadded sequence."""
    return ref.forward(params, np.asarray(seq, dtype=np.int64)[None, :], cfg)[0, -1]


def check_cached_logits(decoder_cls, params, tol):
    cfg, rng = CACHE_CFG, np.random.default_rng(1)
    tokens, start, rows = prepare_prompts(PROMPTS, cfg, max_new_tokens=6)
    decoder = decoder_cls(params, cfg)
    logits = decoder.prefill(tokens, start, tokens.shape[1] + 6)
    seqs = [list(r) for r in rows]
    for _ in range(6):
        truth = np.stack([full_forward_last(params, cfg, s) for s in seqs])
        np.testing.assert_allclose(logits, truth, rtol=0, atol=tol)
        nxt = rng.integers(0, cfg.vocab_size, size=len(seqs))  # teacher forcing: any token will do
        seqs = [s + [int(t)] for s, t in zip(seqs, nxt, strict=True)]
        logits = decoder.step(nxt)
    truth = np.stack([full_forward_last(params, cfg, s) for s in seqs])
    np.testing.assert_allclose(logits, truth, rtol=0, atol=tol)


# --------------------------------------------------------------------------------------------------
# KV cache ≡ full forward pass, every step, ragged batch


def test_numpy_cache_matches_full_forward_f64():
    check_cached_logits(ReferenceDecoder, noisy_params(CACHE_CFG, seed=0), tol=1e-10)


@settings(max_examples=10)
@given(st.lists(st.lists(st.integers(0, 10), min_size=1, max_size=9), min_size=1, max_size=4), st.integers(0, 99))
def test_numpy_cache_any_ragged_batch(prompts, seed):
    """Property: for any batch of prompts, cached prefill + steps equal the unpadded full forward pass."""
    cfg, params, rng = CACHE_CFG, noisy_params(CACHE_CFG, seed=seed % 3), np.random.default_rng(seed)
    tokens, start, rows = prepare_prompts(prompts, cfg, max_new_tokens=4)
    decoder = ReferenceDecoder(params, cfg)
    logits = decoder.prefill(tokens, start, tokens.shape[1] + 4)
    for _ in range(3):
        truth = np.stack([full_forward_last(params, cfg, r) for r in rows])
        np.testing.assert_allclose(logits, truth, rtol=0, atol=1e-10)
        nxt = rng.integers(0, cfg.vocab_size, size=len(rows))
        rows = [r + [int(t)] for r, t in zip(rows, nxt, strict=True)]
        logits = decoder.step(nxt)


def test_jax_cache_matches_full_forward_f64(x64):
    check_cached_logits(JaxDecoder, noisy_params(CACHE_CFG, seed=0), tol=1e-10)


def test_jax_cache_matches_full_forward_f32():
    check_cached_logits(JaxDecoder, noisy_params(CACHE_CFG, seed=0, dtype=np.float32), tol=1e-5)


def test_no_cache_paths_match_full_forward_f64(x64):
    params = noisy_params(CACHE_CFG, seed=0)
    for cls in (ReferenceDecoder, JaxDecoder):
        check_cached_logits(lambda p, c, cls=cls: cls(p, c, use_cache=False), params, tol=1e-10)


def brute_greedy(params, cfg, prompt, n):
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(np.argmax(full_forward_last(params, cfg, seq))))
    return seq[len(prompt) :]


def test_greedy_all_paths_equal_bruteforce(x64):
    """The jitted while_loop, the step-by-step loops and the NumPy reference, cached or not, all give the
    argmax chain of the full forward pass, for a ragged batch."""
    cfg, params = CACHE_CFG, noisy_params(CACHE_CFG, seed=3)
    truth = [brute_greedy(params, cfg, p, 8) for p in PROMPTS]
    for backend, use_cache in itertools.product(("numpy", "jax"), (True, False)):
        out = generate(params, PROMPTS, cfg, max_new_tokens=8, temperature=0, backend=backend, use_cache=use_cache)
        assert out == truth, (backend, use_cache)
    steps = list(stream(params, PROMPTS, cfg, max_new_tokens=8, temperature=0, backend="jax"))
    assert [[int(s[b]) for s in steps] for b in range(3)] == truth


def test_gpt_model_input_uses_jax_and_agrees():
    from minigpt import GPT

    cfg = CACHE_CFG
    params = noisy_params(cfg, seed=3, dtype=np.float32)
    model = GPT.from_params(params, cfg)
    assert generate(model, PROMPTS, max_new_tokens=5, temperature=0) == generate(
        params, PROMPTS, cfg, max_new_tokens=5, temperature=0, backend="numpy"
    )


# --------------------------------------------------------------------------------------------------
# sampling: seeds, loop ≡ while_loop, top-k=1 ≡ greedy, distribution of the sampler


def test_sampling_reproducible_and_loops_agree():
    cfg, params = CACHE_CFG, noisy_params(CACHE_CFG, seed=4, scale=0.1, dtype=np.float32)
    kw = dict(max_new_tokens=8, temperature=1.3, top_k=6, top_p=0.9, repetition_penalty=1.2)
    for backend in ("jax", "numpy"):
        a = generate(params, PROMPTS, cfg, seed=1, backend=backend, **kw)
        assert a == generate(params, PROMPTS, cfg, seed=1, backend=backend, **kw)
        assert a != generate(params, PROMPTS, cfg, seed=2, backend=backend, **kw)
    steps = list(stream(params, PROMPTS, cfg, seed=1, backend="jax", **kw))
    assert [[int(s[b]) for s in steps] for b in range(3)] == generate(params, PROMPTS, cfg, seed=1, backend="jax", **kw)


def test_top_k_1_and_tiny_top_p_are_greedy():
    cfg, params = CACHE_CFG, noisy_params(CACHE_CFG, seed=5, dtype=np.float32)
    greedy = generate(params, PROMPTS, cfg, max_new_tokens=6, temperature=0, backend="numpy")
    for backend in ("numpy", "jax"):
        assert generate(params, PROMPTS, cfg, max_new_tokens=6, top_k=1, seed=7, backend=backend) == greedy
        assert generate(params, PROMPTS, cfg, max_new_tokens=6, top_p=1e-6, seed=7, backend=backend) == greedy


def test_numpy_sampler_frequencies_and_zero_probability():
    logits = np.log(np.array([[0.1, 0.0, 0.6, 0.3]]))  # token 1 has probability 0 (logit −∞)
    rng = np.random.default_rng(0)
    draws = np.concatenate([sample_numpy(np.repeat(logits, 1000, axis=0), rng) for _ in range(20)])
    freq = np.bincount(draws, minlength=4) / draws.size
    assert freq[1] == 0
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)  # 20000 draws: σ ≤ 0.0035


# --------------------------------------------------------------------------------------------------
# filters: properties on hand-made logits


logit_rows = st.lists(st.integers(-6, 6).map(lambda i: i / 2), min_size=1, max_size=12)  # coarse grid → ties


@settings(max_examples=60)
@given(logit_rows, st.integers(1, 14))
def test_top_k_properties(row, k):
    x = np.array([row])
    y = top_k_filter(x, k)[0]
    kept = np.isfinite(y)
    np.testing.assert_array_equal(y[kept], x[0][kept])  # kept logits untouched
    if k >= len(row):
        assert kept.all()
        return
    assert kept.sum() >= k
    assert x[0][kept].min() > x[0][~kept].max() if (~kept).any() else True  # nothing dropped beats a kept one
    assert (x[0] > x[0][kept].min()).sum() < k  # only ties at the k-th value exceed k


@settings(max_examples=60)
@given(logit_rows, st.floats(0.01, 1.0))
def test_top_p_properties(row, p):
    x = np.array([row])
    probs = np.exp(x[0] - x[0].max())
    probs /= probs.sum()
    y = top_p_filter(x, p)[0]
    kept = np.isfinite(y)
    np.testing.assert_array_equal(y[kept], x[0][kept])
    assert probs[kept].sum() >= p - 1e-12  # enough mass
    assert probs[probs > probs[kept].min()].sum() < p + 1e-12  # minimal: without the least likely group it falls short
    assert kept[np.argmax(probs)]
    if p == 1.0:
        assert kept.all()


def test_filters_jax_equal_numpy(x64):
    import jax.numpy as jnp

    x = np.random.default_rng(0).normal(size=(4, 9)).round(1)
    for k in (1, 3, 9, 20):
        np.testing.assert_array_equal(np.asarray(top_k_filter(jnp.asarray(x), k)), top_k_filter(x, k))
    for p in (0.05, 0.5, 0.9, 1.0):
        np.testing.assert_array_equal(np.asarray(top_p_filter(jnp.asarray(x), p)), top_p_filter(x, p))


def test_filters_ties_and_edges():
    flat = np.zeros((1, 5))
    assert np.isfinite(top_k_filter(flat, 2)).all()  # all tied at the k-th value: all kept
    assert np.isfinite(top_p_filter(flat, 0.3)).all()
    x = np.array([[3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(top_k_filter(x, 5), x)
    np.testing.assert_array_equal(top_p_filter(x, 1.0), x)


def test_repetition_penalty_values():
    x = np.array([[2.0, -2.0, 2.0, -2.0]])
    seen = np.array([[True, True, False, False]])
    np.testing.assert_allclose(apply_repetition_penalty(x, seen, 2.0), [[1.0, -4.0, 2.0, -2.0]])


# --------------------------------------------------------------------------------------------------
# beam search


BEAM_CFG = GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=2, n_embd=8)


def brute_force_beams(params, cfg, prompt, max_new, eos, alpha):
    """Every possible continuation (ending at EOS or at max_new tokens) with its exact score."""
    hyps = []
    for n in range(1, max_new + 1):
        for seq in itertools.product(range(cfg.vocab_size), repeat=n):
            if eos in seq[:-1] or (n < max_new and seq[-1] != eos):
                continue
            full = np.array([list(prompt) + list(seq)])
            logp = log_softmax(ref.forward(params, full, cfg)[0], axis=-1)
            lp = sum(logp[len(prompt) - 1 + t, tok] for t, tok in enumerate(seq))
            hyps.append((lp / n**alpha, list(seq)))
    return sorted(hyps, key=lambda h: -h[0])


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.5])
def test_beam_search_exact_with_enough_beams(alpha):
    params, prompt = noisy_params(BEAM_CFG, seed=2, scale=0.8), [0, 1]
    truth = brute_force_beams(params, BEAM_CFG, prompt, max_new=3, eos=2, alpha=alpha)
    hyps = beam_search(params, prompt, BEAM_CFG, num_beams=27, max_new_tokens=3, eos_token=2,
                       length_penalty=alpha, num_return=4)  # fmt: skip
    assert [h.tokens for h in hyps] == [seq for _, seq in truth[:4]]
    np.testing.assert_allclose([h.score for h in hyps], [s for s, _ in truth[:4]], rtol=1e-12)


def test_beam_search_jax_matches_numpy(x64):
    params, prompt = noisy_params(BEAM_CFG, seed=2, scale=0.8), [0, 1]
    kw = dict(num_beams=3, max_new_tokens=4, eos_token=2, num_return=3)
    a = beam_search(params, prompt, BEAM_CFG, backend="numpy", **kw)
    b = beam_search(params, prompt, BEAM_CFG, backend="jax", **kw)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-10)


def test_one_beam_is_greedy():
    cfg, params = CACHE_CFG, noisy_params(CACHE_CFG, seed=6)
    for prompt in PROMPTS:
        greedy = brute_greedy(params, cfg, prompt, 6)
        assert beam_search(params, prompt, cfg, num_beams=1, max_new_tokens=6)[0].tokens == greedy
        # with an EOS and α = 0, beam search also stops where greedy would
        eos = greedy[2]
        stopped = greedy[: greedy.index(eos) + 1]
        hyp = beam_search(params, prompt, cfg, num_beams=1, max_new_tokens=6, eos_token=eos, length_penalty=0.0)[0]
        assert hyp.tokens == stopped


# --------------------------------------------------------------------------------------------------
# banned phrases

PIECES = ["a", "b", "c", "差", "评", "差评", "好", "价", "评价", "d"]
SCRIPT_TEXT = ["a", "差", "评", "b", "差评", "c", "好", "差", "评价", "a", "b", "c"]
BAN_CFG = GPTConfig(vocab_size=len(PIECES), block_size=24, n_layer=1, n_head=2, n_embd=64)


def _script_model(prompt_len: int, dtype=np.float64):
    """Predicts SCRIPT_TEXT right after a prompt of ``prompt_len`` tokens."""
    script = [0] * (prompt_len - 1) + [PIECES.index(s) for s in SCRIPT_TEXT]
    return script_params(BAN_CFG, script, dtype=dtype)


def test_script_model_says_the_banned_phrase_without_ban():
    tok = PieceTokenizer(PIECES)
    params = _script_model(2)
    text = generate_text(params, tok, "ab", BAN_CFG, max_new_tokens=len(SCRIPT_TEXT), temperature=0)
    assert text == "".join(SCRIPT_TEXT)
    assert text.count("差评") == 3  # as two tokens, as one token, and "差" + "评价"
    sampled = generate_text(_script_model(2, np.float32), tok, "ab", BAN_CFG, max_new_tokens=12, seed=0, backend="jax")
    assert "差评" in sampled


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_ban_holds_for_every_strategy(backend):
    tok = PieceTokenizer(PIECES)
    params = _script_model(2, dtype=np.float64 if backend == "numpy" else np.float32)
    kw = dict(max_new_tokens=len(SCRIPT_TEXT), backend=backend, ban=["差评"])
    texts = [generate_text(params, tok, "ab", BAN_CFG, temperature=0, **kw)]
    texts += [generate_text(params, tok, "ab", BAN_CFG, seed=s, temperature=2.0, **kw) for s in range(4)]
    texts += ["".join(stream_text(params, tok, "ab", BAN_CFG, seed=9, **kw))]
    texts += [t for t, _ in beam_search_text(params, tok, "ab", BAN_CFG, num_beams=4, num_return=4, **kw)]
    for text in texts:
        assert "差评" not in text, text
    assert texts[0].startswith("a差")  # the ban only bites where the phrase would be completed


def test_ban_completes_across_prompt_and_bytes():
    # the prompt ends with "差": the model's first choice "评" completes the phrase and is masked
    tok = PieceTokenizer(PIECES)
    params = script_params(BAN_CFG, [0, PIECES.index("评"), PIECES.index("评")])
    assert generate_text(params, tok, "a差", BAN_CFG, max_new_tokens=1, temperature=0) == "评"
    assert generate_text(params, tok, "a差", BAN_CFG, max_new_tokens=1, temperature=0, ban="差评") != "评"
    # byte-level: "差评" is six byte tokens; banning must still work mid-character
    cfg = GPTConfig(vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=64)
    btok = ByteTokenizerWithBytes()
    params = script_params(cfg, btok.encode("好差评"))
    assert generate_text(params, btok, "x", cfg, max_new_tokens=9, temperature=0) == "好差评"
    banned = generate_text(params, btok, "x", cfg, max_new_tokens=9, temperature=0, ban=["差评"])
    assert banned.startswith("好") and "差评" not in banned
    with pytest.warns(UserWarning, match="partial UTF-8"):  # without exact bytes the user is told
        BannedPhrases.from_tokenizer(["差评"], ByteTokenizer(), 256)


def test_bad_bans():
    tok = PieceTokenizer(PIECES)
    with pytest.raises(ValueError, match="cannot be tokenised"):
        BannedPhrases.from_tokenizer(["垃圾"], tok, len(PIECES))
    with pytest.raises(ValueError, match="non-empty"):
        BannedPhrases.from_tokenizer([""], tok, len(PIECES))


# --------------------------------------------------------------------------------------------------
# stop tokens, streaming text


def test_stop_tokens_end_each_row():
    params = _script_model(2)
    stop = PIECES.index("b")
    prompts = [[0, 1], [0, 1, 2, 3, 4]]  # the second row is 3 tokens further into the script
    out = generate(params, prompts, BAN_CFG, max_new_tokens=8, temperature=0, stop_tokens=[stop])
    assert out[0] == [PIECES.index(s) for s in SCRIPT_TEXT[:4]]  # a 差 评 b
    assert out[1] == [PIECES.index(s) for s in SCRIPT_TEXT[3:4]]  # b at once
    params32 = _script_model(2, np.float32)
    assert (
        generate(params32, prompts, BAN_CFG, max_new_tokens=8, temperature=0, stop_tokens=[stop], backend="jax") == out
    )


def test_text_stream_waits_for_whole_characters():
    tok, text = ByteTokenizer(), "这款手机的性能非常好，"
    stream_ = TextStream(tok)
    pieces = [stream_.push(b) for b in tok.encode(text)]
    assert "".join(pieces) + stream_.flush() == text
    assert [p for p in pieces if p] == list(text)  # one character per 3 bytes, never a partial one


def test_stream_text_yields_characters():
    cfg = GPTConfig(vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=64)
    tok = ByteTokenizer()
    params = script_params(cfg, tok.encode("好评"))
    assert list(stream_text(params, tok, "x", cfg, max_new_tokens=6, temperature=0)) == ["好", "评"]


# --------------------------------------------------------------------------------------------------
# bad input


def test_bad_inputs_are_clear_errors():
    cfg, params = CACHE_CFG, noisy_params(CACHE_CFG, seed=0)
    cases = [
        (dict(prompts=[[]]), "empty"),
        (dict(prompts=[]), "no prompts"),
        (dict(prompts=[[1, 11]]), "token id 11.*vocab_size 11"),
        (dict(prompts=[[1, -1]]), "token id -1"),
        (dict(prompts=[list(range(11))], max_new_tokens=8), "at most 8.*block_size=16"),
        (dict(max_new_tokens=16), "max_new_tokens=16.*block_size=16"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
        (dict(stop_tokens=[11]), "stop token 11"),
    ]
    params32 = noisy_params(CACHE_CFG, seed=0, dtype=np.float32)
    for backend, p in (("numpy", params), ("jax", params32)):
        for override, match in cases:
            kw = dict(prompts=[[1, 2]], max_new_tokens=3) | override
            with pytest.raises(ValueError, match=match):
                generate(p, kw.pop("prompts"), cfg, backend=backend, **kw)
    with pytest.raises(ValueError, match="float64"):
        generate(params, [[1]], cfg, max_new_tokens=2, backend="jax")  # f64 params without x64
    with pytest.raises(ValueError, match="non-empty string"):
        generate_text(params, PieceTokenizer(PIECES), "", cfg, max_new_tokens=2)
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(params, [1], cfg, num_beams=0, max_new_tokens=2)


def test_crop_prompt_keeps_the_last_tokens():
    cfg, params = CACHE_CFG, noisy_params(CACHE_CFG, seed=0)
    long = list(np.random.default_rng(0).integers(0, 11, size=20))
    cropped = generate(params, [long], cfg, max_new_tokens=4, temperature=0, crop_prompt=True)
    assert cropped == [brute_greedy(params, cfg, long[-12:], 4)]


# --------------------------------------------------------------------------------------------------
# CLI (everything after load_run)


def test_run_sample_greedy_and_beam_with_ban():
    tok, params = PieceTokenizer(PIECES), _script_model(2)
    parser = build_parser()
    out = io.StringIO()
    args = parser.parse_args(["run", "--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "4",
                              "--backend", "numpy"])  # fmt: skip
    assert run_sample(BAN_CFG, params, tok, args, out=out) == 0
    assert out.getvalue() == "ab" + "".join(SCRIPT_TEXT[:4]) + "\n"
    out = io.StringIO()
    args = parser.parse_args(["run", "--prompt", "ab", "--strategy", "beam", "--num-beams", "3", "--num-return", "2",
                              "--max-new-tokens", "6", "--ban", "差评", "--backend", "numpy"])  # fmt: skip
    run_sample(BAN_CFG, params, tok, args, out=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and all(line.startswith("[") and "差评" not in line for line in lines)
    scores = [float(line[1 : line.index("]")]) for line in lines]
    assert scores == sorted(scores, reverse=True) and all(math.isfinite(s) for s in scores)
    with pytest.raises(ValueError, match="no tokenizer"):
        run_sample(BAN_CFG, params, None, args, out=out)


def test_sample_main_loads_the_run_and_reports_errors(monkeypatch, capsys):
    """``minigpt sample`` calls minigpt.training.runs.load_run (stood in for here) and turns a
    ValueError into exit code 2 with the message on stderr."""
    from minigpt.commands.sample import main

    tok, params = PieceTokenizer(PIECES), _script_model(2)
    calls = []

    def load_run(run_dir, step=None):
        calls.append((run_dir, step))
        return BAN_CFG, params, tok

    monkeypatch.setattr("minigpt.commands.sample.load_run", load_run)
    argv = ["runs/x", "--step", "7", "--prompt", "ab", "--strategy", "greedy", "--max-new-tokens", "3"]
    assert main(argv + ["--backend", "numpy"]) == 0
    assert calls == [("runs/x", 7)]
    assert capsys.readouterr().out == "ab" + "".join(SCRIPT_TEXT[:3]) + "\n"
    assert main(argv + ["--backend", "numpy", "--ban", "垃圾"]) == 2
    assert "垃圾" in capsys.readouterr().err


def test_bans_are_exact_under_minigpt_byte_level_bpe():
    """With token_bytes a phrase split inside a character is still caught; no U+FFFD fallback warning."""
    import warnings

    from minigpt.generate.bans import token_bytes
    from minigpt.tokenizers import ByteLevelBPE, CharTokenizer

    texts = ["这款手机的性能非常好，差评不多。", "给个差评吧", "评价很好"] * 5
    bpe = ByteLevelBPE.train(texts, vocab_size=300)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pieces = token_bytes(bpe, bpe.vocab_size)
    # every token's bytes concatenate to the text's bytes, including tokens that end mid-character
    ids = bpe.encode("差评")
    assert b"".join(pieces[i] for i in ids) == "差评".encode()
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)  # single bytes of a 3-byte character exist
    char = CharTokenizer.from_texts(texts)
    assert b"".join(token_bytes(char, char.vocab_size)[i] for i in char.encode("差评")) == "差评".encode()


def test_one_name_per_concept_and_the_old_names_still_work():
    """bans= at every level (phrases or BannedPhrases) and stop_tokens= for beam search too; the old keywords
    ban= and eos_token= give the same answers, and naming banned phrases twice is refused."""
    tok = PieceTokenizer(PIECES)
    params = _script_model(2)
    kw = dict(max_new_tokens=len(SCRIPT_TEXT), temperature=0)
    new = generate_text(params, tok, "ab", BAN_CFG, bans=["差评"], **kw)
    assert "差评" not in new
    assert new == generate_text(params, tok, "ab", BAN_CFG, ban=["差评"], **kw)
    built = BannedPhrases.from_tokenizer(["差评"], tok, BAN_CFG.vocab_size)
    assert new == generate_text(params, tok, "ab", BAN_CFG, bans=built, **kw)
    with pytest.raises(ValueError, match="bans=.*old name"):
        generate_text(params, tok, "ab", BAN_CFG, bans=["差评"], ban=["差评"], **kw)
    beam_params, prompt = noisy_params(BEAM_CFG, seed=2, scale=0.8), [0, 1]
    beams = dict(num_beams=3, max_new_tokens=4, num_return=3)
    a = beam_search(beam_params, prompt, BEAM_CFG, stop_tokens=[2], **beams)
    b = beam_search(beam_params, prompt, BEAM_CFG, eos_token=2, **beams)
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert any(h.tokens[-1] == 2 for h in a)  # the stop token really ended a hypothesis
    with pytest.raises(ValueError, match="stop token 7 is out of range"):
        beam_search(beam_params, prompt, BEAM_CFG, stop_tokens=[7], **beams)


def test_sampling_is_one_value_and_its_keywords_still_work(x64):
    """Sampling(...) and the older keywords pick the same tokens, on both backends; mixing them or misspelling
    one is refused, and a bad value is named."""
    from minigpt.generate import Sampling

    params, prompt = noisy_params(BEAM_CFG, seed=3, scale=0.8), [[0, 1], [2]]
    for backend in ("numpy", "jax"):
        kw = dict(max_new_tokens=5, backend=backend)
        a = generate(params, prompt, BEAM_CFG, sampling=Sampling(temperature=0.7, top_k=2, seed=4), **kw)
        b = generate(params, prompt, BEAM_CFG, temperature=0.7, top_k=2, seed=4, **kw)
        assert a == b
        greedy = generate(params, prompt, BEAM_CFG, sampling=Sampling(temperature=0), **kw)
        assert greedy == generate(params, prompt, BEAM_CFG, temperature=0, **kw)
    with pytest.raises(ValueError, match="once"):
        generate(params, prompt, BEAM_CFG, max_new_tokens=2, sampling=Sampling(), temperature=0)
    with pytest.raises(TypeError, match="'temprature'"):
        generate(params, prompt, BEAM_CFG, max_new_tokens=2, temprature=0)
    with pytest.raises(ValueError, match="top_p must be in"):
        Sampling(top_p=1.5)

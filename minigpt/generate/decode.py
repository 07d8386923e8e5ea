"""Autoregressive decoding: prompts in, new tokens out, one token per step.

    logits_t = model(x_≤t)[t];  x_{t+1} = pick(process(logits_t))

``pick`` is argmax (greedy, ``temperature=0``) or a draw from softmax(processed logits / τ) after
top-k / top-p filtering (``minigpt.generate.processors``). Two interchangeable decoders do the model
part, both on a KV cache:

* ``ReferenceDecoder`` — NumPy, growing cache (``minigpt.generate.kv_cache``), a Python loop; samples with
  ``np.random.default_rng(seed)``;
* ``JaxDecoder`` — the JAX model itself (``minigpt.model.apply`` with a ``minigpt.model.KVCache``), jitted
  prefill and single-token step; samples with ``jax.random.fold_in(jax.random.key(seed), t)`` at step t.

``generate`` runs the whole JAX loop inside one ``jit`` with ``lax.while_loop`` when it can (JAX
backend, no banned phrases); ``stream`` is the step-by-step generator (used for printing as tokens
come, for banned phrases, and by the NumPy reference). For the same seed the JAX ``while_loop`` and
the JAX step-by-step loop draw the same tokens; NumPy and JAX draw from different generators, so only
their greedy outputs are comparable.

Prompts of different lengths are left-padded (see ``kv_cache``); each row stops at its first stop
token (which is included in its output) or after ``max_new_tokens``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minigpt.config import GPTConfig
from minigpt.generate.bans import BannedPhrases
from minigpt.generate.kv_cache import ReferenceKVCache, forward_cached_numpy
from minigpt.generate.processors import check_sampling, process_logits, sample_numpy
from minigpt.model import GPT, KVCache, apply, jax_params, to_params
from minigpt.params import Params, validate_params
from minigpt.validation import check_id_range

Sampling = tuple  # (temperature, top_k, top_p, repetition_penalty): hashable, a static jit argument


# --------------------------------------------------------------------------------------------------
# input checks


def prepare_prompts(
    prompts: Any, cfg: GPTConfig, max_new_tokens: int, *, crop_prompt: bool = False
) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Validate prompts and left-pad them: returns (tokens (B, P) int32, start (B,), prompts as lists).

    ``prompts``: one sequence of ids (1-D), a (B, T) array, or a list of sequences of any lengths.
    Each row must fit with its continuation: len(prompt) + max_new_tokens ≤ block_size (learned
    positions stop there). With ``crop_prompt=True`` a longer prompt keeps only its last
    block_size − max_new_tokens tokens (a sliding window over the prompt) instead of raising.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    max_new_tokens = int(max_new_tokens)
    if max_new_tokens >= cfg.block_size:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt within block_size={cfg.block_size}; "
            f"use at most {cfg.block_size - 1} new tokens"
        )
    if hasattr(prompts, "shape"):  # a NumPy or JAX array: 1-D is one prompt, 2-D is a batch
        prompts = np.asarray(prompts)
        rows = [prompts] if prompts.ndim <= 1 else list(prompts)
    elif isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, (int, np.integer)) for p in prompts):
        rows = [prompts]
    else:
        rows = list(prompts)
    if not rows:
        raise ValueError("no prompts given; pass at least one non-empty sequence of token ids")
    room = cfg.block_size - max_new_tokens
    out: list[list[int]] = []
    for b, row in enumerate(rows):
        ids = np.asarray(row)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError(
                f"prompt {b} is empty or not a 1-D sequence of token ids (shape {ids.shape}); "
                "give at least one token (e.g. a start or newline token)"
            )
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"prompt {b} must hold integer token ids, got dtype {ids.dtype}")
        check_id_range(ids, cfg.vocab_size, f"prompt {b}: token id")
        if ids.size > room:
            if not crop_prompt:
                raise ValueError(
                    f"prompt {b} has {ids.size} tokens; with max_new_tokens={max_new_tokens} it must have at most "
                    f"{room} (block_size={cfg.block_size}); shorten it, lower max_new_tokens, or pass "
                    "crop_prompt=True to keep only its last tokens"
                )
            ids = ids[-room:]
        out.append([int(i) for i in ids])
    P = max(len(r) for r in out)
    tokens = np.zeros((len(out), P), dtype=np.int32)
    start = np.array([P - len(r) for r in out], dtype=np.int32)
    for b, r in enumerate(out):
        tokens[b, start[b] :] = r
    return tokens, start, out


def resolve_model(model: Any, cfg: GPTConfig | None, backend: str | None) -> tuple[Params, GPTConfig, str]:
    """(params, cfg, backend) from a Flax ``GPT`` or a reference-layout params dict."""
    if isinstance(model, GPT):
        cfg, default = model.cfg, "jax"
        params = to_params(model, copy=backend not in (None, "jax"))  # JAX decoding reads the model's own arrays
    elif isinstance(model, dict):
        if cfg is None:
            raise ValueError("decoding from a params dict needs its GPTConfig: pass cfg=...")
        params, default = model, "numpy"
    else:
        raise ValueError(f"model must be a minigpt.GPT or a reference-layout params dict, got {type(model).__name__}")
    backend = default if backend is None else backend
    if backend not in ("jax", "numpy"):
        raise ValueError(f"backend must be 'jax' or 'numpy', got {backend!r}")
    validate_params(params, cfg)
    return params, cfg, backend


def make_decoder(
    model: Any, cfg: GPTConfig | None = None, *, backend: str | None = None, use_cache: bool = True, seed: int = 0
):
    """A ``ReferenceDecoder`` or ``JaxDecoder`` for ``model`` (``GPT`` → JAX by default, params dict → NumPy)."""
    params, cfg, backend = resolve_model(model, cfg, backend)
    cls = JaxDecoder if backend == "jax" else ReferenceDecoder
    return cls(params, cfg, use_cache=use_cache, seed=seed)


# --------------------------------------------------------------------------------------------------
# the two decoders: prefill(tokens, start, n_slots) → last logits; step(tokens) → next logits


class ReferenceDecoder:
    """NumPy decoding. With ``use_cache=False`` every step re-runs the network over the whole sequence
    (the O(T²) baseline the cache exists to avoid)."""

    def __init__(self, params: Params, cfg: GPTConfig, *, use_cache: bool = True, seed: int = 0):
        self.params, self.cfg, self.use_cache = params, cfg, use_cache
        self.rng = np.random.default_rng(seed)

    def prefill(self, tokens: np.ndarray, start: np.ndarray, n_slots: int) -> np.ndarray:
        """Run the padded prompts (B, P); returns logits (B, V) for the next token."""
        self.start, self.tokens = np.asarray(start), np.asarray(tokens)
        self.cache = ReferenceKVCache(self.cfg, self.start)
        return forward_cached_numpy(self.params, self.cfg, self.tokens, self.cache)[:, -1]

    def step(self, token: np.ndarray) -> np.ndarray:
        """Append one token per row (B,); returns logits (B, V) for the next one."""
        self.tokens = np.concatenate([self.tokens, np.asarray(token)[:, None]], axis=1)
        if not self.use_cache:
            self.cache = ReferenceKVCache(self.cfg, self.start)
            return forward_cached_numpy(self.params, self.cfg, self.tokens, self.cache)[:, -1]
        return forward_cached_numpy(self.params, self.cfg, self.tokens[:, -1:], self.cache)[:, 0]

    def reorder(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows)
        self.tokens, self.start = self.tokens[rows], self.start[rows]
        self.cache.reorder(rows)

    def pick(self, logits: np.ndarray, seen: np.ndarray, banned: np.ndarray | None, t: int, sampling: Sampling):
        temperature, top_k, top_p, penalty = sampling
        z = process_logits(
            logits, seen=seen, banned=banned, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=penalty,
        )  # fmt: skip
        return np.argmax(z, axis=-1) if temperature == 0 else sample_numpy(z, self.rng)


def _decode(params: Params, tokens: jax.Array, cfg: GPTConfig, cache: KVCache) -> tuple[jax.Array, KVCache]:
    """The model on new tokens (B, T) written into ``cache``: the plain layers (``fast`` only helps backward)."""
    return apply(params, tokens, cfg, fast=False, cache=cache)


@functools.partial(jax.jit, static_argnames=("cfg", "n_slots"))
def _prefill_jax(params, tokens, start, *, cfg, n_slots):
    cache = KVCache.init(cfg, tokens.shape[0], n_slots, params["wte"]["weight"].dtype, start)
    logits, cache = _decode(params, tokens, cfg, cache)
    return logits[:, -1], cache


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("cache",))
def _step_jax(params, token, cache, *, cfg):
    logits, cache = _decode(params, token[:, None], cfg, cache)
    return logits[:, 0], cache


@functools.partial(jax.jit, static_argnames=("cfg",))
def _full_jax(params, tokens, slot, start, *, cfg):
    """No cache: the whole buffer (B, S) through the network (a fresh cache of S slots is only the
    left-padding mask); logits (B, V) of slot ``slot``."""
    cache = KVCache.init(cfg, tokens.shape[0], tokens.shape[1], params["wte"]["weight"].dtype, start)
    logits, _ = _decode(params, tokens, cfg, cache)
    return jax.lax.dynamic_index_in_dim(logits, slot, axis=1, keepdims=False)


@functools.partial(jax.jit, static_argnames=("sampling",))
def _pick_jax(logits, seen, banned, key, *, sampling):

    temperature, top_k, top_p, penalty = sampling
    z = process_logits(
        logits, seen=seen, banned=banned, temperature=temperature, top_k=top_k, top_p=top_p,
        repetition_penalty=penalty,
    )  # fmt: skip
    if temperature == 0:
        return jnp.argmax(z, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, z, axis=-1).astype(jnp.int32)


@jax.jit
def _reorder_jax(cache: KVCache, rows: jax.Array) -> KVCache:
    return cache.reorder(rows)


class JaxDecoder:
    """JAX decoding with a fixed-size cache and jitted steps (one compile per prompt shape)."""

    def __init__(self, params: Params, cfg: GPTConfig, *, use_cache: bool = True, seed: int = 0):
        self.params, self.cfg, self.use_cache = jax_params(params), cfg, use_cache
        self.key = jax.random.key(seed)

    def prefill(self, tokens: np.ndarray, start: np.ndarray, n_slots: int) -> np.ndarray:
        self.start = jnp.asarray(start, jnp.int32)
        self.slot = tokens.shape[1]
        if self.use_cache:
            logits, self.cache = _prefill_jax(self.params, jnp.asarray(tokens, jnp.int32), self.start,
                                              cfg=self.cfg, n_slots=n_slots)  # fmt: skip
            return np.asarray(logits)
        self.buffer = np.zeros((tokens.shape[0], n_slots), dtype=np.int32)
        self.buffer[:, : self.slot] = tokens
        return np.asarray(_full_jax(self.params, self.buffer, self.slot - 1, self.start, cfg=self.cfg))

    def step(self, token: np.ndarray) -> np.ndarray:
        token = np.asarray(token, dtype=np.int32)
        if self.use_cache:
            logits, self.cache = _step_jax(self.params, jnp.asarray(token), self.cache, cfg=self.cfg)
        else:
            self.buffer[:, self.slot] = token
            logits = _full_jax(self.params, self.buffer, self.slot, self.start, cfg=self.cfg)
        self.slot += 1
        return np.asarray(logits)

    def reorder(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int32)
        self.start = self.start[jnp.asarray(rows)]
        if self.use_cache:
            self.cache = _reorder_jax(self.cache, jnp.asarray(rows))
        else:
            self.buffer = self.buffer[rows]

    def pick(self, logits: np.ndarray, seen: np.ndarray, banned: np.ndarray | None, t: int, sampling: Sampling):
        key = jax.random.fold_in(self.key, t)
        return np.asarray(_pick_jax(logits, seen, banned, key, sampling=sampling))


# --------------------------------------------------------------------------------------------------
# the loops


def _seen_matrix(prompts: list[list[int]], vocab_size: int) -> np.ndarray:
    """(B, V) bool: token v occurs in row b's context (for the repetition penalty)."""
    seen = np.zeros((len(prompts), vocab_size), dtype=bool)
    for b, row in enumerate(prompts):
        seen[b, row] = True
    return seen


def _check_stop(stop_tokens: Sequence[int], cfg: GPTConfig) -> tuple[int, ...]:
    stop = tuple(int(s) for s in stop_tokens)
    for s in stop:
        if not 0 <= s < cfg.vocab_size:
            raise ValueError(f"stop token {s} is out of range for vocab_size {cfg.vocab_size}")
    return stop


def stream(
    model: Any,
    prompts: Any,
    cfg: GPTConfig | None = None,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    stop_tokens: Sequence[int] = (),
    seed: int = 0,
    bans: BannedPhrases | None = None,
    backend: str | None = None,
    use_cache: bool = True,
    crop_prompt: bool = False,
) -> Iterator[np.ndarray]:
    """Yield the new token of every row, step by step: an int array (B,), −1 for rows already stopped.

    ``temperature=0`` is greedy decoding (argmax; top_k/top_p are then irrelevant). ``bans`` masks
    every token that would complete a banned phrase (``BannedPhrases``). Arguments are checked before
    the first token is computed, so a bad setting raises ``ValueError`` at the call.
    """
    params, cfg, backend = resolve_model(model, cfg, backend)
    check_sampling(temperature, top_k, top_p, repetition_penalty)
    tokens, start, rows = prepare_prompts(prompts, cfg, max_new_tokens, crop_prompt=crop_prompt)
    stop = _check_stop(stop_tokens, cfg)
    if bans is not None and bans.vocab_size != cfg.vocab_size:
        raise ValueError(f"bans were built for vocab_size {bans.vocab_size}, the model has {cfg.vocab_size}")
    decoder = (JaxDecoder if backend == "jax" else ReferenceDecoder)(params, cfg, use_cache=use_cache, seed=seed)
    sampling = (float(temperature), top_k, float(top_p), float(repetition_penalty))
    return _stream(decoder, tokens, start, rows, int(max_new_tokens), stop, bans, sampling)


def _stream(decoder, tokens, start, rows, max_new_tokens, stop, bans, sampling) -> Iterator[np.ndarray]:
    B, V = tokens.shape[0], decoder.cfg.vocab_size
    seen = _seen_matrix(rows, V)
    tails = [bans.tail(b"".join(bans.pieces[i] for i in row)) for row in rows] if bans else None
    done = np.zeros(B, dtype=bool)
    logits = decoder.prefill(tokens, start, tokens.shape[1] + max_new_tokens)
    for t in range(max_new_tokens):
        banned = None
        if bans is not None:
            banned = np.stack([bans.mask(tail) for tail in tails])  # (B, V)
            stuck = banned.all(axis=1) & ~done
            if stuck.any():
                raise ValueError(f"every token is banned for row {int(np.argmax(stuck))} at step {t}; relax the bans")
        token = np.where(done, -1, decoder.pick(logits, seen, banned, t, sampling)).astype(np.int64)
        yield token
        live = ~done
        seen[np.flatnonzero(live), token[live]] = True
        if bans is not None:
            tails = [bans.extend(tail, tok) if tok >= 0 else tail for tail, tok in zip(tails, token, strict=True)]
        done = done | np.isin(token, stop)
        if done.all() or t == max_new_tokens - 1:
            return
        logits = decoder.step(np.where(token < 0, 0, token))


@functools.partial(jax.jit, static_argnames=("cfg", "max_new_tokens", "sampling", "stop", "use_cache"))
def _generate_jax(params, tokens, start, key, *, cfg, max_new_tokens, sampling, stop, use_cache):
    """The whole decoding loop as one XLA program: prefill, then ``lax.while_loop`` over steps until
    every row has stopped or max_new_tokens are out. Returns new tokens (B, max_new_tokens), −1 after a stop."""

    B, P = tokens.shape
    V, S = cfg.vocab_size, P + max_new_tokens
    rows = jnp.arange(B)
    real = jnp.arange(P)[None, :] >= start[:, None]  # (B, P)
    seen = jnp.zeros((B, V), bool).at[rows[:, None], jnp.where(real, tokens, V)].set(True, mode="drop")
    if use_cache:
        logits, memory = _prefill_jax(params, tokens, start, cfg=cfg, n_slots=S)
    else:
        memory = jnp.zeros((B, S), jnp.int32).at[:, :P].set(tokens)
        logits = _full_jax(params, memory, P - 1, start, cfg=cfg)
    stop_ids = jnp.asarray(stop if stop else (-1,), jnp.int32)

    def cond(state):
        t, _, _, _, _, done = state
        return (t < max_new_tokens) & ~jnp.all(done)

    def body(state):
        t, logits, memory, seen, out, done = state
        token = _pick_jax(logits, seen, None, jax.random.fold_in(key, t), sampling=sampling)
        token = jnp.where(done, -1, token)
        out = out.at[:, t].set(token)
        seen = seen.at[rows, jnp.where(done, V, token)].set(True, mode="drop")
        done = done | jnp.isin(token, stop_ids)
        feed = jnp.where(token < 0, 0, token)
        if use_cache:
            logits, memory = _decode(params, feed[:, None], cfg, memory)
            logits = logits[:, 0]
        else:
            memory = jax.lax.dynamic_update_slice(memory, feed[:, None], (jnp.int32(0), (P + t).astype(jnp.int32)))
            logits = _full_jax(params, memory, P + t, start, cfg=cfg)
        return t + 1, logits, memory, seen, out, done

    out = jnp.full((B, max_new_tokens), -1, jnp.int32)
    state = (jnp.int32(0), logits, memory, seen, out, jnp.zeros(B, bool))
    return jax.lax.while_loop(cond, body, state)[4]


def generate(
    model: Any,
    prompts: Any,
    cfg: GPTConfig | None = None,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    repetition_penalty: float = 1.0,
    stop_tokens: Sequence[int] = (),
    seed: int = 0,
    bans: BannedPhrases | None = None,
    backend: str | None = None,
    use_cache: bool = True,
    crop_prompt: bool = False,
) -> list[list[int]]:
    """New tokens for each prompt (a list per row, ending at its stop token if it produced one).

    ``model``: a ``minigpt.GPT`` (JAX by default) or a reference-layout params dict with ``cfg``
    (NumPy by default); ``backend="jax"|"numpy"`` overrides. See ``stream`` for the arguments.
    On the JAX backend without bans the whole loop is one jitted ``lax.while_loop``.
    """
    kwargs = dict(
        max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
        repetition_penalty=repetition_penalty, stop_tokens=stop_tokens, seed=seed, bans=bans, backend=backend,
        use_cache=use_cache, crop_prompt=crop_prompt,
    )  # fmt: skip
    params, cfg, backend = resolve_model(model, cfg, backend)
    if backend == "jax" and bans is None:
        check_sampling(temperature, top_k, top_p, repetition_penalty)
        tokens, start, _ = prepare_prompts(prompts, cfg, max_new_tokens, crop_prompt=crop_prompt)
        stop = _check_stop(stop_tokens, cfg)
        out = _generate_jax(
            jax_params(params), jnp.asarray(tokens), jnp.asarray(start), jax.random.key(seed), cfg=cfg,
            max_new_tokens=int(max_new_tokens), sampling=(float(temperature), top_k, float(top_p),
            float(repetition_penalty)), stop=stop, use_cache=use_cache,
        )  # fmt: skip
        steps = np.asarray(out).T  # (max_new_tokens, B)
    else:
        kwargs["backend"] = backend
        steps = list(stream(params, prompts, cfg, **kwargs))
    B = len(steps[0])
    return [[int(s[b]) for s in steps if s[b] >= 0] for b in range(B)]

"""The JAX decoder: the Flax model on a fixed-size ``KVCache``, with jitted prefill, step and whole loop.

``JaxDecoder`` is ``minigpt.generate.decode``'s step-by-step interface (prefill → step → pick) for the JAX
backend; ``generate_jax`` runs the whole decoding loop as one XLA program (``lax.while_loop``). Only the JAX
backend imports this module, so NumPy decoding runs without JAX.

XLA compiles one program per input shape, so both round the prompt length and the number of cache slots up to
powers of two (``bucket``; more left padding, which the masks ignore), take ``max_new_tokens`` as a traced number,
and make random keys inside the programs: prompts of 1–8 tokens, 9–16, … and any number of new tokens within the
same slots share one program, and no small program is compiled on the side.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minigpt.config import GPTConfig
from minigpt.generate.processors import process_logits
from minigpt.model import KVCache, apply, jax_params
from minigpt.params import Params

Processing = tuple  # Sampling.processing: (temperature, top_k, top_p, repetition_penalty), a static jit argument


def bucket(n: int, cap: int) -> int:
    """The padded length for n: the smallest power of two ≥ max(n, 8), but at most ``cap`` (and never below n).

    len = 2^⌈log₂ n⌉; 8 at least, because short prompts are common and cost nothing extra to pad.
    """
    return max(n, min(max(8, 1 << (n - 1).bit_length()), cap))


def bucket_shapes(prompt_len: int, new_tokens: int, cap: int) -> tuple[int, int]:
    """(padded prompt length P', cache slots S') for a prompt of ``prompt_len`` and ``new_tokens`` more, within
    ``cap`` slots (the block size): P' = bucket(P) while P' + new_tokens fits, S' = bucket(P' + new_tokens)."""
    padded = bucket(prompt_len, cap - new_tokens)
    return padded, bucket(padded + new_tokens, cap)


def pad_left(tokens: np.ndarray, start: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-pad (B, P) prompts with token 0 to (B, length) int32; ``start`` (B,) moves right by length − P."""
    extra = length - tokens.shape[1]
    return np.pad(np.asarray(tokens, np.int32), ((0, 0), (extra, 0))), np.asarray(start, np.int32) + extra


def seed_arg(seed: int) -> np.ndarray:
    """``seed`` as a jit argument that ``jax.random.key`` inside the program turns into ``jax.random.key(seed)``.

    Why inside: outside a jitted function ``jax.random.key`` and ``fold_in`` each compile a program of their own.
    Without 64-bit mode JAX keeps the low 32 bits of a seed, and so does this.
    """
    return np.asarray(seed, np.int64) if jax.config.jax_enable_x64 else np.asarray(seed & 0xFFFFFFFF, np.uint32)


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
def _pick_at_jax(logits, seen, banned, seed, t, *, sampling):
    """Step t's token with the key fold_in(key(seed), t), derived inside the program."""
    return _pick_jax(logits, seen, banned, jax.random.fold_in(jax.random.key(seed), t), sampling=sampling)


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
def _reorder_jax(cache: KVCache, start: jax.Array, rows: jax.Array) -> tuple[KVCache, jax.Array]:
    return cache.reorder(rows), start[rows]


class JaxDecoder:
    """JAX decoding with a fixed-size cache and jitted steps (one compile per prompt shape)."""

    def __init__(self, params: Params, cfg: GPTConfig, *, use_cache: bool = True, seed: int = 0):
        self.params, self.cfg, self.use_cache = jax_params(params), cfg, use_cache
        self.seed = seed_arg(seed)

    def prefill(self, tokens: np.ndarray, start: np.ndarray, n_slots: int) -> np.ndarray:
        new_tokens = n_slots - tokens.shape[1]  # the room the caller asked for, kept in the bucketed shapes
        length, n_slots = bucket_shapes(tokens.shape[1], new_tokens, max(self.cfg.block_size, n_slots))
        tokens, start = pad_left(tokens, start, length)
        self.start = jax.device_put(start)
        self.slot = length
        if self.use_cache:
            logits, self.cache = _prefill_jax(self.params, tokens, self.start, cfg=self.cfg, n_slots=n_slots)
            return np.asarray(logits)
        self.buffer = np.zeros((tokens.shape[0], n_slots), dtype=np.int32)
        self.buffer[:, : self.slot] = tokens
        return np.asarray(_full_jax(self.params, self.buffer, self.slot - 1, self.start, cfg=self.cfg))

    def step(self, token: np.ndarray) -> np.ndarray:
        token = np.asarray(token, dtype=np.int32)
        if self.use_cache:
            logits, self.cache = _step_jax(self.params, token, self.cache, cfg=self.cfg)
        else:
            self.buffer[:, self.slot] = token
            logits = _full_jax(self.params, self.buffer, self.slot, self.start, cfg=self.cfg)
        self.slot += 1
        return np.asarray(logits)

    def reorder(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int32)
        if self.use_cache:
            self.cache, self.start = _reorder_jax(self.cache, self.start, rows)
        else:
            self.start = self.start[rows]
            self.buffer = self.buffer[rows]

    def pick(self, logits: np.ndarray, seen: np.ndarray, banned: np.ndarray | None, t: int, sampling: Processing):
        return np.asarray(_pick_at_jax(logits, seen, banned, self.seed, np.int32(t), sampling=sampling))


@functools.partial(jax.jit, static_argnames=("cfg", "n_slots", "sampling", "stop", "use_cache"))
def _generate_jax(params, tokens, start, seed, max_new_tokens, *, cfg, n_slots, sampling, stop, use_cache):
    """The whole decoding loop as one XLA program: prefill, then ``lax.while_loop`` over steps until
    every row has stopped or max_new_tokens (traced: any number up to n_slots − P shares the program) are out.
    Returns new tokens (B, n_slots − P), −1 after a stop and beyond max_new_tokens."""

    B, P = tokens.shape
    V, S = cfg.vocab_size, n_slots
    key = jax.random.key(seed)
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

    out = jnp.full((B, S - P), -1, jnp.int32)
    state = (jnp.int32(0), logits, memory, seen, out, jnp.zeros(B, bool))
    return jax.lax.while_loop(cond, body, state)[4]


def generate_jax(
    params: Params, tokens: np.ndarray, start: np.ndarray, seed: int, *, cfg: GPTConfig, max_new_tokens: int,
    sampling: Processing, stop: tuple[int, ...], use_cache: bool,
) -> Any:  # fmt: skip
    """New tokens (B, max_new_tokens), −1 after a row's stop, for the padded prompts ``tokens`` (B, P)."""
    length, n_slots = bucket_shapes(tokens.shape[1], max_new_tokens, cfg.block_size)
    tokens, start = pad_left(tokens, start, length)
    out = _generate_jax(
        jax_params(params), tokens, start, seed_arg(seed), np.int32(max_new_tokens), cfg=cfg, n_slots=n_slots,
        sampling=sampling, stop=stop, use_cache=use_cache,
    )  # fmt: skip
    return np.asarray(out)[:, :max_new_tokens]

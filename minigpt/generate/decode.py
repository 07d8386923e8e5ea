"""Autoregressive decoding: prompts in, new tokens out, one token per step.

    logits_t = model(x_≤t)[t];  x_{t+1} = pick(process(logits_t))

``pick`` is argmax (greedy, ``temperature=0``) or a draw from softmax(processed logits / τ) after
top-k / top-p filtering (``minigpt.generate.processors``). Two interchangeable decoders do the model
part, both on a KV cache:

* ``ReferenceDecoder`` — NumPy, growing cache (``minigpt.reference.kv_cache``), a Python loop; samples with
  ``np.random.default_rng(seed)``;
* ``JaxDecoder`` (``minigpt.generate.jax_decoder``, imported only for the JAX backend) — the JAX model itself
  (``minigpt.model.apply`` with a ``minigpt.model.KVCache``), jitted
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

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.generate.bans import BannedPhrases
from minigpt.generate.processors import process_logits, sample_numpy
from minigpt.generate.sampling import Sampling, sampling_from
from minigpt.params import Params, validate_params
from minigpt.reference.kv_cache import ReferenceKVCache, forward_cached_numpy
from minigpt.validation import check_id_range

Processing = tuple[float, int | None, float, float]  # Sampling.processing: (τ, top_k, top_p, penalty)


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
    if isinstance(model, dict):
        if cfg is None:
            raise ValueError("decoding from a params dict needs its GPTConfig: pass cfg=...")
        params, default = model, "numpy"
    else:
        from minigpt.model import GPT, to_params  # JAX: only for a Flax model, so NumPy decoding runs without it

        if not isinstance(model, GPT):
            raise ValueError(
                f"model must be a minigpt.GPT or a reference-layout params dict, got {type(model).__name__}"
            )
        cfg, default = model.cfg, "jax"
        params = to_params(model, copy=backend not in (None, "jax"))  # JAX decoding reads the model's own arrays
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
    return decoder_for(backend, params, cfg, use_cache=use_cache, seed=seed)


def decoder_for(backend: str, params: Params, cfg: GPTConfig, *, use_cache: bool = True, seed: int = 0):
    """The decoder class of ``backend`` ("jax" or "numpy") on ``params``; JAX is imported only for "jax"."""
    if backend == "jax":
        from minigpt.generate.jax_decoder import JaxDecoder  # JAX: only for the JAX backend

        return JaxDecoder(params, cfg, use_cache=use_cache, seed=seed)
    return ReferenceDecoder(params, cfg, use_cache=use_cache, seed=seed)


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

    def pick(self, logits: np.ndarray, seen: np.ndarray, banned: np.ndarray | None, t: int, sampling: Processing):
        temperature, top_k, top_p, penalty = sampling
        z = process_logits(
            logits, seen=seen, banned=banned, temperature=temperature, top_k=top_k, top_p=top_p,
            repetition_penalty=penalty,
        )  # fmt: skip
        return np.argmax(z, axis=-1) if temperature == 0 else sample_numpy(z, self.rng)


# --------------------------------------------------------------------------------------------------
# the loops


def _seen_matrix(prompts: list[list[int]], vocab_size: int) -> np.ndarray:
    """(B, V) bool: token v occurs in row b's context (for the repetition penalty)."""
    seen = np.zeros((len(prompts), vocab_size), dtype=bool)
    for b, row in enumerate(prompts):
        seen[b, row] = True
    return seen


def check_stop(stop_tokens: Sequence[int], cfg: GPTConfig) -> tuple[int, ...]:
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
    sampling: Sampling | None = None,
    stop_tokens: Sequence[int] = (),
    bans: BannedPhrases | None = None,
    backend: str | None = None,
    use_cache: bool = True,
    crop_prompt: bool = False,
    **settings: Any,
) -> Iterator[np.ndarray]:
    """Yield the new token of every row, step by step: an int array (B,), −1 for rows already stopped.

    ``sampling`` (``Sampling``) says how each token is picked: ``Sampling(temperature=0)`` is greedy decoding.
    Its fields may be given as keywords instead (``temperature=0.8, top_k=40, seed=1``). ``bans`` masks every
    token that would complete a banned phrase (``BannedPhrases``). Arguments are checked before the first token
    is computed, so a bad setting raises ``ValueError`` at the call.
    """
    sampling = sampling_from(sampling, settings, "stream")
    params, cfg, backend = resolve_model(model, cfg, backend)
    tokens, start, rows = prepare_prompts(prompts, cfg, max_new_tokens, crop_prompt=crop_prompt)
    stop = check_stop(stop_tokens, cfg)
    if bans is not None and bans.vocab_size != cfg.vocab_size:
        raise ValueError(f"bans were built for vocab_size {bans.vocab_size}, the model has {cfg.vocab_size}")
    decoder = decoder_for(backend, params, cfg, use_cache=use_cache, seed=sampling.seed)
    return _stream(decoder, tokens, start, rows, int(max_new_tokens), stop, bans, sampling.processing)


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


def generate(
    model: Any,
    prompts: Any,
    cfg: GPTConfig | None = None,
    *,
    max_new_tokens: int,
    sampling: Sampling | None = None,
    stop_tokens: Sequence[int] = (),
    bans: BannedPhrases | None = None,
    backend: str | None = None,
    use_cache: bool = True,
    crop_prompt: bool = False,
    **settings: Any,
) -> list[list[int]]:
    """New tokens for each prompt (a list per row, ending at its stop token if it produced one).

    ``model``: a ``minigpt.GPT`` (JAX by default) or a reference-layout params dict with ``cfg``
    (NumPy by default); ``backend="jax"|"numpy"`` overrides. See ``stream`` for the arguments.
    On the JAX backend without bans the whole loop is one jitted ``lax.while_loop``.
    """
    sampling = sampling_from(sampling, settings, "generate")
    params, cfg, backend = resolve_model(model, cfg, backend)
    if backend == "jax" and bans is None:
        from minigpt.generate.jax_decoder import generate_jax  # JAX: only for the JAX backend

        tokens, start, _ = prepare_prompts(prompts, cfg, max_new_tokens, crop_prompt=crop_prompt)
        stop = check_stop(stop_tokens, cfg)
        out = generate_jax(params, tokens, start, sampling.seed, cfg=cfg, max_new_tokens=int(max_new_tokens),
                           sampling=sampling.processing, stop=stop, use_cache=use_cache)  # fmt: skip
        steps = np.asarray(out).T  # (max_new_tokens, B)
    else:
        steps = list(stream(params, prompts, cfg, max_new_tokens=max_new_tokens, sampling=sampling,
                            stop_tokens=stop_tokens, bans=bans, backend=backend, use_cache=use_cache,
                            crop_prompt=crop_prompt))  # fmt: skip
    B = len(steps[0])
    return [[int(s[b]) for s in steps if s[b] >= 0] for b in range(B)]

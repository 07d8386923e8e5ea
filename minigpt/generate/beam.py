"""Beam search: keep the ``num_beams`` most probable partial continuations at every step.

A hypothesis y = (y₁ … y_n) of the prompt x scores

    score(y) = log P(y | x) / n^α,     log P(y | x) = Σ_t log softmax(logits_t)[y_t]

with α = ``length_penalty`` (α = 0: plain log-likelihood; α > 0 favours longer hypotheses, since
log P < 0). Each step expands every live beam by every token, ranks the B·V candidates by
cumulative log-probability, moves candidates ending in ``eos_token`` to the finished list (among the
best 2·num_beams candidates, as in Hugging Face) and keeps the best ``num_beams`` others alive. At
``max_new_tokens`` the live beams are finished too. The search stops early only when no live beam can
still beat the ``num_return`` best finished ones: a live beam's log P can only fall, so its best
future score is log P / n_max^α for α > 0 and log P / (n + 1)^α for α ≤ 0. Hence with
num_beams ≥ V^max_new_tokens nothing is ever pruned and the result is the exact best hypothesis.

Banned phrases (``BannedPhrases``) set the log-probability of completing tokens to −∞ (no
renormalisation: scores stay the model's log-probabilities). One prompt at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from minigpt.config import GPTConfig
from minigpt.generate.bans import BannedPhrases
from minigpt.generate.decode import check_stop, decoder_for, prepare_prompts, resolve_model
from minigpt.reference.functional import log_softmax


class Hypothesis(NamedTuple):
    tokens: list[int]  # the new tokens (ending with its stop token if it finished that way)
    score: float  # log P / len^α
    logprob: float  # log P(tokens | prompt)


def length_normalised(logprob: float, length: int, length_penalty: float) -> float:
    """score = log P / length^α."""
    return logprob / (length**length_penalty)


def beam_search(
    model: Any,
    prompt: Any,
    cfg: GPTConfig | None = None,
    *,
    num_beams: int,
    max_new_tokens: int,
    length_penalty: float = 1.0,
    stop_tokens: Sequence[int] = (),
    num_return: int = 1,
    bans: BannedPhrases | None = None,
    backend: str | None = None,
    crop_prompt: bool = False,
    eos_token: int | None = None,
) -> list[Hypothesis]:
    """The ``num_return`` best hypotheses for one prompt (1-D token ids), best first.

    A hypothesis finishes at any of ``stop_tokens`` (included in its tokens), as in ``generate``; ``eos_token``
    is the old name for one such token.
    """
    params, cfg, backend = resolve_model(model, cfg, backend)
    stop = check_stop((*stop_tokens, *(() if eos_token is None else (eos_token,))), cfg)
    if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(f"num_beams must be a positive integer, got {num_beams!r}")
    if isinstance(num_return, bool) or not isinstance(num_return, int) or not 1 <= num_return <= num_beams:
        raise ValueError(f"num_return must be an integer in 1..num_beams={num_beams}, got {num_return!r}")
    if not (isinstance(length_penalty, (int, float)) and math.isfinite(length_penalty)):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    if bans is not None and bans.vocab_size != cfg.vocab_size:
        raise ValueError(f"bans were built for vocab_size {bans.vocab_size}, the model has {cfg.vocab_size}")
    tokens, start, rows = prepare_prompts(np.asarray(prompt).reshape(-1), cfg, max_new_tokens, crop_prompt=crop_prompt)
    decoder = decoder_for(backend, params, cfg)
    K, V, alpha = num_beams, cfg.vocab_size, float(length_penalty)

    logits = decoder.prefill(tokens, start, tokens.shape[1] + max_new_tokens)  # (1, V)
    decoder.reorder(np.zeros(K, dtype=np.int64))  # K copies of the prompt's cache
    logits = np.repeat(logits, K, axis=0)  # (K, V)
    seqs: list[list[int]] = [[] for _ in range(K)]
    logp_sum = np.full(K, -np.inf)
    logp_sum[0] = 0.0  # one live beam to start with; the copies only fill the batch
    tails = [bans.tail(b"".join(bans.pieces[i] for i in rows[0]))] * K if bans else None
    finished: list[Hypothesis] = []

    for t in range(max_new_tokens):
        n = t + 1  # length of every hypothesis made at this step
        logp = log_softmax(logits.astype(np.float64), axis=-1)  # (K, V)
        if bans is not None:
            logp = np.where(np.stack([bans.mask(tail) for tail in tails]), -np.inf, logp)
        cand = logp_sum[:, None] + logp  # (K, V) cumulative log P of every extension
        order = np.argsort(-cand, axis=None, kind="stable")[: 2 * K]
        keep: list[tuple[int, int, float]] = []  # (beam, token, log P) of the next live beams
        for flat in order:
            beam, tok = divmod(int(flat), V)
            s = float(cand[beam, tok])
            if s == -np.inf:
                break
            if tok in stop:
                finished.append(Hypothesis(seqs[beam] + [tok], length_normalised(s, n, alpha), s))
            elif len(keep) < K:
                keep.append((beam, tok, s))
        if not keep or t == max_new_tokens - 1:
            finished += [Hypothesis(seqs[b] + [tok], length_normalised(s, n, alpha), s) for b, tok, s in keep]
            break
        finished.sort(key=lambda h: -h.score)
        if len(finished) >= num_return:
            n_best = n + 1 if alpha <= 0 else max_new_tokens
            best_live = max(length_normalised(s, n_best, alpha) for _, _, s in keep)
            if finished[num_return - 1].score >= best_live:
                break
        keep += [(keep[0][0], keep[0][1], -np.inf)] * (K - len(keep))  # dead fillers keep the batch at K rows
        beams = np.array([b for b, _, _ in keep])
        new_tokens = np.array([tok for _, tok, _ in keep])
        seqs = [seqs[b] + [tok] for b, tok, _ in keep]
        logp_sum = np.array([s for _, _, s in keep])
        if bans is not None:
            tails = [bans.extend(tails[b], tok) for b, tok, _ in keep]
        decoder.reorder(beams)
        logits = decoder.step(new_tokens)
    finished.sort(key=lambda h: -h.score)
    return finished[:num_return]

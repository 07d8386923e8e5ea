"""Checkers for lesson 07 (decoding): top-k and top-p filtering, one beam-search step and the banned-phrase
mask, against ``minigpt.generate`` (imported when a check runs: it loads JAX). Same contract as
``minigpt.testing.checkers``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from minigpt.generate.bans import BannedPhrases
from minigpt.generate.processors import top_k_filter, top_p_filter
from minigpt.reference import functional as F
from minigpt.testing.checks.diagnosis import arrays, call, compare, describe, generator, run

_INF = "the filtered logits must be -np.inf (so softmax gives them probability exactly 0), not {value:g}."


@st.composite
def _logits(draw, max_vocab: int = 10):
    B, V = draw(st.integers(1, 3)), draw(st.integers(2, max_vocab))
    rng = generator(draw)
    # distinct values: ties would make "the k largest" ambiguous
    return np.stack([rng.permutation(V) + rng.random() * 0.5 for _ in range(B)]) * draw(
        st.sampled_from([0.3, 1.0, 4.0])
    )


def _filled_with(got: Any, want: np.ndarray, logits: np.ndarray, what: str, ins: dict[str, Any]) -> None:
    """Name the mistake of the right tokens kept but the others set to a finite number (0, -1e9, …)."""
    got = np.asarray(got)
    if got.shape != want.shape or not np.issubdtype(got.dtype, np.floating):
        return
    dropped = np.isneginf(want)
    kept_right = np.allclose(np.where(dropped, 0.0, got), np.where(dropped, 0.0, want))
    filled = (
        dropped.any() and np.all(np.isfinite(got[dropped])) and not np.any(np.isclose(got[dropped], logits[dropped]))
    )
    if kept_right and filled and len(set(got[dropped].tolist())) == 1:
        raise AssertionError(f"{what}: " + _INF.format(value=got[dropped][0]) + "\n" + describe(ins))


def check_top_k_filter(fn: Callable[[np.ndarray, int], np.ndarray], max_examples: int = 25) -> None:
    """``fn(logits, k)``, logits (B, V): keep each row's k largest logits, -inf elsewhere (k ≥ V keeps all)."""

    @st.composite
    def inputs(draw):
        logits = draw(_logits())
        return logits, draw(st.integers(1, logits.shape[-1] + 1))

    def prop(example):
        logits, k = example
        ins = {"logits": logits, "k": k}
        got = call(fn, "top_k_filter", ins, logits.copy(), k)
        want = top_k_filter(logits, k)
        _filled_with(got, want, logits, "top_k_filter", ins)
        V = logits.shape[-1]
        compare(
            got,
            want,
            ins,
            [
                ("you kept the k SMALLEST logits; keep the largest.", lambda: -top_k_filter(-logits, k)),
                ("off by one: that keeps k+1 tokens.", lambda: top_k_filter(logits, k + 1)),
                (
                    "you returned probabilities; return the filtered LOGITS.",
                    lambda: np.where(np.isneginf(want), 0.0, F.softmax(want)),
                ),
            ]
            + ([("off by one: that keeps k−1 tokens.", lambda: top_k_filter(logits, k - 1))] if k > 1 else [])
            + ([("k ≥ V must keep every token.", lambda: top_k_filter(logits, V - 1))] if k >= V else []),
            what="top_k_filter",
        )

    run(prop, inputs(), max_examples)


def check_top_p_filter(fn: Callable[[np.ndarray, float], np.ndarray], max_examples: int = 25) -> None:
    """``fn(logits, p)``: keep the smallest set of most probable tokens whose probability reaches p (the token
    that crosses p is kept, the most probable always), -inf elsewhere; p = 1 keeps all."""

    @st.composite
    def inputs(draw):
        return draw(_logits()), draw(st.sampled_from([0.1, 0.3, 0.5, 0.8, 0.9, 1.0]))

    def exclusive(logits, p):  # the classic: stop BEFORE the token that crosses p
        probs = F.softmax(logits)
        order = np.argsort(-probs, -1)
        sorted_p = np.take_along_axis(probs, order, -1)
        keep_sorted = np.cumsum(sorted_p, -1) <= p
        keep_sorted[..., 0] = True
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, -1)
        return np.where(keep, logits, -np.inf)

    def unsorted(logits, p):
        probs = F.softmax(logits)
        return np.where(np.cumsum(probs, -1) - probs < p, logits, -np.inf)

    def prop(example):
        logits, p = example
        ins = {"logits": logits, "p": p}
        got = call(fn, "top_p_filter", ins, logits.copy(), p)
        want = top_p_filter(logits, p)
        _filled_with(got, want, logits, "top_p_filter", ins)
        compare(
            got,
            want,
            ins,
            [
                (
                    "the token whose probability crosses p must be kept: keep token i while the mass BEFORE it is "
                    "< p (the nucleus is the smallest set with mass ≥ p).",
                    lambda: exclusive(logits, p),
                ),
                (
                    "sort the probabilities from most to least probable before accumulating them.",
                    lambda: unsorted(logits, p),
                ),
                (
                    "accumulate probabilities (softmax of the logits), not the logits themselves.",
                    lambda: exclusive(logits, p * logits.sum()),
                ),
            ],
            what="top_p_filter",
        )

    run(prop, inputs(), max_examples)


def beam_step_reference(logp_sum: np.ndarray, logp: np.ndarray, num_beams: int) -> tuple[np.ndarray, ...]:
    """The num_beams best (beam, token) extensions by cumulative log P, best first (ties: lower flat index)."""
    cand = logp_sum[:, None] + logp
    flat = np.argsort(-cand, axis=None, kind="stable")[:num_beams]
    beams, tokens = np.divmod(flat, logp.shape[1])
    return beams, tokens, cand.reshape(-1)[flat]


def check_beam_step(fn: Callable[..., Any], max_examples: int = 25) -> None:
    """``fn(logp_sum, logp, num_beams)``: logp_sum (K,) the beams' cumulative log P so far (-inf for a dead one),
    logp (K, V) each beam's next-token log-probabilities. Returns (beams, tokens, scores), each (num_beams,):
    the num_beams best extensions over ALL beams and tokens by logp_sum[b] + logp[b, v], best first."""

    @st.composite
    def inputs(draw):
        K, V = draw(st.integers(1, 3)), draw(st.integers(3, 6))
        logp = F.log_softmax(arrays(draw, (K, V), 2.0))
        first = draw(st.booleans())
        logp_sum = np.full(K, -np.inf) if first else -np.abs(arrays(draw, (K,), 3.0))
        logp_sum[0] = 0.0 if first else logp_sum[0]
        return logp_sum, logp, K

    def prop(example):
        logp_sum, logp, K = example
        ins = {"logp_sum": logp_sum, "logp": logp, "num_beams": K}
        got = call(fn, "beam_step", ins, logp_sum.copy(), logp.copy(), K)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            raise AssertionError("beam_step: return three arrays (beams, tokens, scores).\n" + describe(ins))
        want = beam_step_reference(logp_sum, logp, K)
        per_beam = (np.arange(K), logp.argmax(-1), logp_sum + logp.max(-1))
        alone = beam_step_reference(np.zeros(K), logp, K)
        for i, what in enumerate(("beams", "tokens", "scores")):
            compare(
                np.asarray(got[i]),
                want[i],
                ins,
                [
                    (
                        "you extended each beam by its own best token; the K best come from ALL K×V extensions.",
                        lambda i=i: per_beam[i],
                    ),
                    (
                        "rank by the CUMULATIVE log P (logp_sum[b] + logp[b, v]), not by the next token's log P alone.",
                        lambda i=i: alone[i] if i < 2 else logp.reshape(-1)[alone[0] * logp.shape[1] + alone[1]],
                    ),
                    ("best first: sort by score from high to low.", lambda i=i: want[i][::-1]),
                ],
                what=f"beam_step, {what}",
            )

    run(prop, inputs(), max_examples)


def banned_mask_reference(context: str, pieces: list[str], phrases: list[str]) -> np.ndarray:
    """True for token v iff context + pieces[v] has a phrase in an occurrence that ends inside pieces[v]."""

    bans = BannedPhrases(phrases, [p.encode("utf-8") for p in pieces])
    return bans.mask(bans.tail(context.encode("utf-8")))


def check_banned_mask(fn: Callable[..., np.ndarray], max_examples: int = 30) -> None:
    """``fn(context, pieces, phrases)`` → bool (V,): True where appending token v (text ``pieces[v]``) to the text
    ``context`` would complete a banned phrase — wholly inside the piece, or started at the end of the context.
    A phrase already inside the context is not the next token's doing and bans nothing."""
    letters = st.text("ab差评", min_size=1, max_size=2)

    @st.composite
    def inputs(draw):
        phrases = draw(st.lists(st.text("ab差评", min_size=1, max_size=3), min_size=1, max_size=2))
        w = phrases[0]
        cut = draw(st.integers(0, len(w) - 1))
        # the cases the classic mistakes get wrong, drawn often: a phrase split between context and piece,
        # and a phrase already complete inside the context
        pieces = [w[cut:], *draw(st.lists(letters, min_size=2, max_size=6))]
        pieces = list(dict.fromkeys(draw(st.permutations(pieces))))
        inside = w if draw(st.booleans()) else ""
        context = draw(st.text("ab差评", max_size=2)) + inside + draw(st.text("ab", max_size=1)) + w[:cut]
        return context, pieces, phrases

    def prop(example):
        context, pieces, phrases = example
        ins = {"context": context, "pieces": pieces, "phrases": phrases}
        got = np.asarray(call(fn, "banned_mask", ins, context, list(pieces), list(phrases)))
        compare(
            got.astype(bool) if got.dtype != bool and got.shape == (len(pieces),) else got,
            banned_mask_reference(context, pieces, phrases),
            ins,
            [
                (
                    "a phrase can start in the context and end in the next token: check context + piece, not the "
                    "piece alone.",
                    lambda: np.array([any(w in p for w in phrases) for p in pieces]),
                ),
                (
                    "a phrase already complete inside the context bans nothing: only an occurrence that ENDS inside "
                    "the new piece counts.",
                    lambda: np.array([any(w in context + p for w in phrases) for p in pieces]),
                ),
                (
                    "only the last character of the context was considered; a phrase of n characters can start up "
                    "to n−1 characters back.",
                    lambda: np.array([any(w in context[-1:] + p for w in phrases) for p in pieces]),
                ),
            ],
            what="banned_mask",
        )

    run(prop, inputs(), max_examples)

"""Lesson 07 checkers: their references agree with brute force; correct implementations pass; mistakes named."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minigpt.testing.checks import decoding as DC

TEXT = st.text("ab差评", max_size=4)


@given(
    TEXT,
    st.lists(st.text("ab差评", min_size=1, max_size=2), min_size=1, max_size=5),
    st.lists(st.text("ab差评", min_size=1, max_size=3), min_size=1, max_size=2),
)
def test_the_banned_mask_reference_is_brute_force(context, pieces, phrases):
    def completes(piece):  # some occurrence of a phrase in context + piece ends inside the piece
        text = context + piece
        return any(text.startswith(w, i) and i + len(w) > len(context) for w in phrases for i in range(len(text)))

    assert DC.banned_mask_reference(context, pieces, phrases).tolist() == [completes(p) for p in pieces]


@given(st.integers(1, 3), st.integers(3, 5), st.integers(0, 2**16))
def test_the_beam_step_reference_is_brute_force(K, V, seed):
    rng = np.random.default_rng(seed)
    logp_sum, logp = -rng.random(K) * 3, np.log(rng.dirichlet(np.ones(V), K))
    everything = sorted(itertools.product(range(K), range(V)), key=lambda bv: -(logp_sum[bv[0]] + logp[bv]))[:K]
    beams, tokens, scores = DC.beam_step_reference(logp_sum, logp, K)
    assert list(zip(beams.tolist(), tokens.tolist(), strict=True)) == everything
    assert np.allclose(scores, [logp_sum[b] + logp[b, v] for b, v in everything])


def top_k(logits, k):
    out = np.full_like(logits, -np.inf)
    for r, row in enumerate(logits):
        keep = np.argsort(row)[::-1][:k]
        out[r, keep] = row[keep]
    return out


def top_p(logits, p):
    out = np.full_like(logits, -np.inf)
    for r, row in enumerate(logits):
        probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        mass = 0.0
        for i in np.argsort(-probs):
            if mass >= p:
                break
            out[r, i], mass = row[i], mass + probs[i]
    return out


def beam(logp_sum, logp, K):
    cands = sorted(
        ((logp_sum[b] + logp[b, v], b, v) for b in range(len(logp_sum)) for v in range(logp.shape[1])),
        key=lambda c: -c[0],
    )[:K]
    return np.array([c[1] for c in cands]), np.array([c[2] for c in cands]), np.array([c[0] for c in cands])


def banned(context, pieces, phrases):
    return np.array([any(w in (context[-(len(w) - 1) :] if len(w) > 1 else "") + p for w in phrases) for p in pieces])


def fails_with(checker, fn, *phrases):
    with pytest.raises(AssertionError) as e:
        checker(fn)
    for phrase in phrases:
        assert phrase in str(e.value), str(e.value)


def test_correct_implementations_pass():
    DC.check_top_k_filter(top_k)
    DC.check_top_p_filter(top_p)
    DC.check_beam_step(beam)
    DC.check_banned_mask(banned)


def test_top_k_and_top_p_mistakes():
    fails_with(DC.check_top_k_filter, lambda lg, k: np.where(np.isneginf(top_k(lg, k)), 0.0, lg), "-np.inf", "not 0")
    fails_with(DC.check_top_k_filter, lambda lg, k: top_k(lg, k + 1), "k+1")

    def exclusive(logits, p):  # stops before the token that crosses p
        out = top_p(logits, p)
        for r, row in enumerate(logits):
            probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
            order = np.argsort(-probs)
            crossing = order[np.searchsorted(np.cumsum(probs[order]), p)] if p < 1 else None
            if crossing is not None and crossing != order[0] and np.cumsum(probs[order])[0] < p:
                out[r, crossing] = -np.inf
        return out

    fails_with(DC.check_top_p_filter, exclusive, "crosses p must be kept")


def test_beam_step_mistakes():
    def per_beam(logp_sum, logp, K):
        return np.arange(K), logp.argmax(-1), logp_sum + logp.max(-1)

    fails_with(DC.check_beam_step, per_beam, "ALL K×V")
    fails_with(DC.check_beam_step, lambda s, lp, K: beam(np.zeros_like(s), lp, K), "CUMULATIVE")
    fails_with(DC.check_beam_step, lambda s, lp, K: tuple(a[::-1] for a in beam(s, lp, K)), "best first")


def test_banned_mask_mistakes():
    fails_with(
        DC.check_banned_mask, lambda c, ps, ws: np.array([any(w in p for w in ws) for p in ps]), "context + piece"
    )
    fails_with(
        DC.check_banned_mask, lambda c, ps, ws: np.array([any(w in c + p for w in ws) for p in ps]), "ENDS inside"
    )

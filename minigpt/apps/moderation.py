"""Moderation of generated text, as a post-processing step after decoding.

Two layers: ``BannedPhrases`` (``minigpt.generate``) stops listed phrases from being generated at all;
this filter then checks every finished text and rejects it when

    a listed phrase occurs in it (also catches text that did not come from a banned decoder), or
    the classifier's P(neg | text) > max_neg_prob (reviews too negative to publish unreviewed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Verdict:
    text: str
    ok: bool
    reasons: list[str] = field(default_factory=list)


class ModerationFilter:
    """``check(text) -> Verdict``; ``filter(texts) -> (kept, rejected)``.

    ``neg_prob``: a function mapping a list of texts to P(neg) per text (e.g. from ``classifier.predict_proba``);
    None checks phrases only.
    """

    def __init__(
        self,
        banned: Iterable[str] = (),
        neg_prob: Callable[[list[str]], Iterable[float]] | None = None,
        max_neg_prob: float = 0.9,
    ) -> None:
        self.banned = [p for p in banned]
        if any(not isinstance(p, str) or not p for p in self.banned):
            raise ValueError(f"banned phrases must be non-empty strings, got {self.banned!r}")
        if not 0.0 <= max_neg_prob <= 1.0:
            raise ValueError(f"max_neg_prob must be in [0, 1], got {max_neg_prob}")
        self.neg_prob, self.max_neg_prob = neg_prob, max_neg_prob

    def check_many(self, texts: list[str]) -> list[Verdict]:
        verdicts = [Verdict(t, True, [f"banned phrase {p!r}" for p in self.banned if p in t]) for t in texts]
        if self.neg_prob is not None:
            scored = [i for i, t in enumerate(texts) if t]  # an empty text has nothing to classify
            probs = list(self.neg_prob([texts[i] for i in scored])) if scored else []
            for i, p in zip(scored, probs, strict=True):
                if p > self.max_neg_prob:
                    verdicts[i].reasons.append(f"P(neg)={p:.2f} > {self.max_neg_prob}")
        for v in verdicts:
            v.ok = not v.reasons
        return verdicts

    def check(self, text: str) -> Verdict:
        return self.check_many([text])[0]

    def filter(self, texts: list[str]) -> tuple[list[str], list[Verdict]]:
        """(texts that pass, verdicts of those rejected)."""
        verdicts = self.check_many(texts)
        return [v.text for v in verdicts if v.ok], [v for v in verdicts if not v.ok]

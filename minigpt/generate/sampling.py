"""``Sampling``: how the next token is picked, as one value instead of five keywords on every decoding function.

    Sampling()                                  temperature 1, no top-k / top-p, no repetition penalty, seed 0
    Sampling(temperature=0)                     greedy (argmax); top_k / top_p are then irrelevant
    Sampling(temperature=0.8, top_k=40, seed=2)

``generate``, ``stream`` and the text functions take ``sampling=Sampling(...)``; their older keywords
(``temperature=``, ``top_k=``, ``top_p=``, ``repetition_penalty=``, ``seed=``) still work and build one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from minigpt.generate.processors import check_sampling


@dataclass(frozen=True)
class Sampling:
    """The settings of the pick: bans → repetition penalty → temperature → top-k → top-p → argmax or a draw."""

    temperature: float = 1.0  # softmax(z / τ); 0 means greedy
    top_k: int | None = None  # keep the k most probable tokens; None keeps all
    top_p: float = 1.0  # keep the smallest set of tokens whose probability reaches p; 1 keeps all
    repetition_penalty: float = 1.0  # > 1 makes tokens already in the context less likely; 1 is off
    seed: int = 0  # the draws' random stream (NumPy and JAX draw differently: only greedy outputs agree)

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p, self.repetition_penalty)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")

    @property
    def processing(self) -> tuple[float, int | None, float, float]:
        """(temperature, top_k, top_p, repetition_penalty): hashable, the static argument of the jitted pick."""
        return float(self.temperature), self.top_k, float(self.top_p), float(self.repetition_penalty)


KEYWORDS = tuple(f.name for f in fields(Sampling))


def sampling_from(sampling: Sampling | None, settings: dict[str, Any], caller: str) -> Sampling:
    """``sampling``, or one built from the older keywords in ``settings`` (never both); unknown keywords are a
    ``TypeError`` naming ``caller``, as Python's own would be."""
    unknown = sorted(set(settings) - set(KEYWORDS))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if sampling is None:
        return Sampling(**settings)
    if not isinstance(sampling, Sampling):
        raise ValueError(f"sampling must be a minigpt.generate.Sampling, got {type(sampling).__name__}")
    if settings:
        raise ValueError(
            f"give the sampling settings once: sampling=Sampling(...) or the keywords {sorted(settings)}, not both"
        )
    return sampling

"""Banned phrases: never let generated text contain given strings.

A phrase such as "差评" spans several tokens (two characters for a char-level tokenizer; one, two or
more byte-level BPE tokens depending on context), so banning "its token sequence" is not enough: BPE
can spell the same text in several ways. We ban at the **text (byte) level** instead:

    a token v is masked after context c  iff  bytes(c) + bytes(v) contains a phrase w
                                               in an occurrence that ends inside bytes(v).

Such an occurrence either lies wholly inside bytes(v), or starts in the context: then the context ends
with a prefix w[:k] (1 ≤ k < |w|) and bytes(v) starts with the rest w[k:]. For every phrase and every k
we precompute the set of tokens whose bytes start with w[k:] (a prefix table over the phrase's
prefixes: the trie of phrase prefixes, walked against the tail of the context). Per step and row the
mask is the union over the prefixes w[:k] that the context currently ends with; only the last
max|w| − 1 bytes of context are kept. Masking every completing token means no strategy — greedy,
sampling or beam search — can ever emit a phrase, however it is tokenised.

Matching on UTF-8 bytes is the same as matching on characters (UTF-8 is self-synchronising) and also
works for byte-level BPE tokens that hold half a character. That needs each token's exact bytes: we
use ``tokenizer.decode_bytes([v])`` or ``tokenizer.token_bytes(v)`` when the tokenizer has one, else
``tokenizer.decode([v]).encode()``, which is exact for char-level tokenizers and for tokens that are
whole characters (a byte-level token holding a partial character decodes to U+FFFD and can then only
be matched as such — a documented limitation for tokenizers without a bytes method).

Occurrences inside the prompt itself are not the model's doing and are left alone; an occurrence that
starts in the prompt and is completed by generated tokens is banned.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def token_bytes(tokenizer: Any, vocab_size: int) -> list[bytes]:
    """The exact bytes each token id decodes to (see module doc for the fallback)."""
    if hasattr(tokenizer, "token_bytes"):
        return [bytes(tokenizer.token_bytes(v)) for v in range(vocab_size)]
    if hasattr(tokenizer, "decode_bytes"):
        return [bytes(tokenizer.decode_bytes([v])) for v in range(vocab_size)]
    texts = [tokenizer.decode([v]) for v in range(vocab_size)]
    if any("\ufffd" in t for t in texts):
        warnings.warn(
            "some tokens decode to U+FFFD on their own (partial UTF-8 characters) and the tokenizer has no "
            "token_bytes/decode_bytes method, so banned phrases split inside a character may be missed",
            stacklevel=3,
        )
    return [t.encode("utf-8") for t in texts]


class BannedPhrases:
    """Masks, per step, every token that would complete one of ``phrases`` in the generated text.

    ``pieces[v]`` are the bytes of token v (``token_bytes``). Use ``BannedPhrases.from_tokenizer``.
    """

    def __init__(self, phrases: Iterable[str], pieces: Sequence[bytes]):
        self.phrases = list(phrases)
        self.pieces = [bytes(p) for p in pieces]
        self.vocab_size = len(self.pieces)
        targets = []
        for phrase in self.phrases:
            if not isinstance(phrase, str) or not phrase:
                raise ValueError(f"a banned phrase must be a non-empty string, got {phrase!r}")
            targets.append(phrase.encode("utf-8"))
        self._targets = targets
        self.max_tail = max((len(w) - 1 for w in targets), default=0)
        # prefix table: (w[:k], ids of tokens whose bytes start with w[k:]) for 1 ≤ k < |w|
        self._completions: list[tuple[bytes, np.ndarray]] = []
        always = np.zeros(self.vocab_size, dtype=bool)  # tokens containing a whole phrase
        for w in targets:
            always |= np.array([w in p for p in self.pieces], dtype=bool)
            for k in range(1, len(w)):
                ids = np.array([v for v, p in enumerate(self.pieces) if p.startswith(w[k:])], dtype=np.int64)
                if ids.size:
                    self._completions.append((w[:k], ids))
        self._always = always

    @classmethod
    def from_tokenizer(cls, phrases: Iterable[str], tokenizer: Any, vocab_size: int) -> BannedPhrases:
        """Check that each phrase can be written by the tokenizer, then build the masks.

        A phrase the tokenizer cannot encode (or that does not decode back to itself, e.g. it has
        characters outside a char-level vocabulary) could never be generated: that is a ``ValueError``,
        since a ban that silently does nothing is most likely a typo or the wrong tokenizer.
        """
        phrases = list(phrases)
        for phrase in phrases:
            if not isinstance(phrase, str) or not phrase:
                raise ValueError(f"a banned phrase must be a non-empty string, got {phrase!r}")
            try:
                ids = list(tokenizer.encode(phrase))
            except Exception as err:  # noqa: BLE001 - any tokenizer failure means "cannot be tokenised"
                raise ValueError(f"banned phrase {phrase!r} cannot be tokenised: {err}") from err
            bad = [i for i in ids if not (0 <= int(i) < vocab_size)]
            if not ids or bad or tokenizer.decode(ids) != phrase:
                raise ValueError(
                    f"banned phrase {phrase!r} cannot be tokenised by this tokenizer "
                    f"(encodes to {ids}, vocab_size {vocab_size}); it could never be generated — "
                    "check the spelling and that the run's tokenizer knows these characters"
                )
        return cls(phrases, token_bytes(tokenizer, vocab_size))

    def tail(self, context: bytes) -> bytes:
        """The part of the context that can still start a phrase: its last max|w| − 1 bytes."""
        return context[-self.max_tail :] if self.max_tail else b""

    def extend(self, tail: bytes, token: int) -> bytes:
        """The tail after appending token ``token``."""
        return self.tail(tail + self.pieces[int(token)])

    def mask(self, tail: bytes) -> np.ndarray:
        """Boolean (V,): True for every token that would complete a phrase after context ending in ``tail``."""
        banned = self._always.copy()
        for prefix, ids in self._completions:
            if tail.endswith(prefix):
                banned[ids] = True
        return banned

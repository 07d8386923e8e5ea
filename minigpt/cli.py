"""``minigpt <command> [options]`` — one entry point, each command implemented in its own module.

Commands are imported lazily so that ``minigpt --help`` does not pay for importing JAX.
"""

from __future__ import annotations

import importlib
import sys

from minigpt.training.compilation_cache import enable_compilation_cache
from minigpt.training.hostmem import configure_cpu

# command → ("module:function", one-line help). Each function takes argv (list[str]) → exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "minigpt.commands.demo:main",
        "the main job: prepare the review corpus, train the baby GPT, continue a prompt",
    ),
    "prepare": ("minigpt.commands.prepare:main", "tokenise the review corpus or a text file into train/val .npy"),
    "train-numpy": ("minigpt.commands.train_numpy:main", "train the tiny preset in pure NumPy (hand-written backward)"),
    "sample": ("minigpt.commands.sample:main", "continue a prompt with a trained run (greedy, sampling, beam; --ban)"),
    "verify": ("minigpt.commands.verify:main", "numerical report: every component, reference vs JAX, f32 and f64"),
    "train": ("minigpt.commands.train:main", "train a GPT on a prepared data dir (Optax, Orbax checkpoints, --resume)"),
    "prepare-sentiment": (
        "minigpt.commands.prepare_sentiment:main",
        "copy a prepared review dir with <pos>/<neg> line prefixes",
    ),
    "chat": ("minigpt.commands.chat:main", "talk to an instruction-tuned run: multi-turn REPL or --once TEXT"),
    "plot": ("minigpt.commands.plot:main", "draw a run's train/val loss curves into RUN_DIR/loss.png"),
    "grade": ("minigpt.commands.grade:main", "score a student's exercise notebook or .py (text, json, Gradescope)"),
    "explain": ("minigpt.commands.explain:main", "look inside a run on a prompt: logit lens, attribution, patching"),
    "assign": ("minigpt.commands.assign:main", "release an exercise from its source: student notebook, --gradescope"),
    "book": ("minigpt.commands.book:main", "build the course's static site: executed lessons, exercises, README"),
}

# Commands that run JAX computations get the CPU tuning of minigpt.training.hostmem (before JAX starts) and the
# persistent compilation cache of minigpt.training.compilation_cache; importing minigpt applies neither, so a
# user's own process is left alone.
TUNED_COMMANDS = frozenset({"demo", "train", "sample", "verify", "chat"})


CACHE_HELP = (
    "\nCompiled programs are kept in ~/.cache/minigpt/jax ($XDG_CACHE_HOME/minigpt/jax), so a command's second run\n"
    "starts in seconds: MINIGPT_COMPILATION_CACHE=DIR moves it, =off turns it off; delete the folder to clear it."
)


def _enable_cache() -> None:
    """The compilation cache for this command; a directory that cannot be made costs speed, not the command."""
    try:
        enable_compilation_cache()
    except ValueError as err:
        print(f"minigpt: warning: no compilation cache: {err}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: minigpt <command> [options]\n\ncommands:")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<12} {help_text}")
        print("\nRun 'minigpt <command> --help' for a command's options.")
        print(CACHE_HELP)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"minigpt: unknown command {name!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if name in TUNED_COMMANDS:
        configure_cpu()
        _enable_cache()
    module, func = COMMANDS[name][0].split(":")
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

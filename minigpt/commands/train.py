"""``minigpt train``: every TrainConfig and GPTConfig field is an option, its help line taken from the field's doc.

Settings are layered: preset < ``--config`` file < flags < the data's vocab_size. With ``--resume`` the run's
saved ``config.json`` is the base instead and only explicitly given settings apply; with ``--init-from`` the
model is the source's (``minigpt.training.init_from``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from minigpt import data
from minigpt.config import FIELD_DOCS, GPTConfig
from minigpt.training import runs
from minigpt.training.config import RENAMED, TRAIN_DOCS, TrainConfig, current_names, read_settings, suggest
from minigpt.training.init_from import resolve_model


def _parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minigpt train",
        description="Train a GPT on a prepared data directory (see 'minigpt prepare').",
        epilog="Every option also takes dashes: --n-layer 4, --max-steps 3000.",
    )
    parser.add_argument("--config", help="JSON file of settings ({'model': {...}, 'train': {...}} or flat keys)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    defaults = TrainConfig()
    train_opts = parser.add_argument_group("training (TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        default = getattr(defaults, f.name)
        kind = _parse_bool if f.type in ("bool", bool) else str if default is None else type(default)
        old = [o for o, new in RENAMED.items() if new == f.name]  # a renamed field keeps its old flags too
        _add(train_opts, f"train.{f.name}", f.name, kind, f"{TRAIN_DOCS[f.name]} (default {f.default!r})", old)
    model_opts = parser.add_argument_group("model (GPTConfig; defaults from --preset)")
    for f in dataclasses.fields(GPTConfig):
        _add(model_opts, f"model.{f.name}", f.name, _model_kind(f), FIELD_DOCS[f.name])
    return parser


def _model_kind(f: dataclasses.Field) -> type:
    """How to parse a GPTConfig field from the command line, from its annotation ("int | None" parses ints)."""
    t = str(f.type)
    for name, kind in (("bool", _parse_bool), ("float", float), ("str", str)):
        if name in t:
            return kind
    return int


def _add(
    group: argparse._ArgumentGroup, dest: str, name: str, kind: type, help_text: str, aliases: list[str] = ()
) -> None:
    names = (name, *aliases)
    flags = [f"--{n}" for n in names] + [f"--{n.replace('_', '-')}" for n in names if "_" in n]
    extra = {"nargs": "?", "const": True} if kind is _parse_bool else {}
    group.add_argument(*flags, dest=dest, type=kind, default=None, help=help_text, metavar="X", **extra)


def resolve(argv: list[str]) -> tuple[GPTConfig, TrainConfig, bool]:
    """(model config, train config, resume) from CLI arguments; preset < --config file < flags < data's vocab.

    With --resume, the run's saved config.json is the base and only explicitly given settings apply.
    """
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        name = unknown[0].lstrip("-").split("=")[0].replace("-", "_")
        raise ValueError(f"unknown option {unknown[0]!r}{suggest(name)} (see 'minigpt train --help')")
    model_over, train_over = read_settings(args.config) if args.config else ({}, {})
    for dest, value in vars(args).items():
        if value is None or "." not in dest:
            continue
        section, name = dest.split(".", 1)
        (model_over if section == "model" else train_over)[name] = value
    if args.resume:
        out = Path(train_over.get("out", TrainConfig.out))
        if not (out / runs.CONFIG).is_file():
            raise FileNotFoundError(f"--resume: {out / runs.CONFIG} not found; pass --out with the run to resume")
        saved = runs.read_config(out)
        cfg = GPTConfig.from_dict({**saved["model"], **model_over})
        return cfg, TrainConfig(**{**current_names(saved["train"]), **train_over}), True
    tcfg = TrainConfig(**train_over)
    if tcfg.init_from:
        return resolve_model(tcfg, model_over), tcfg, False
    vocab = data.load_meta(tcfg.data)["vocab_size"]
    if "vocab_size" in model_over and model_over["vocab_size"] != vocab:
        given = model_over["vocab_size"]
        raise ValueError(f"--vocab_size {given} disagrees with the data's vocab_size {vocab}; omit it")
    return GPTConfig.preset(tcfg.preset, **{**model_over, "vocab_size": vocab}), tcfg, False


def main(argv: list[str] | None = None) -> int:
    try:
        cfg, tcfg, resume = resolve(list(sys.argv[1:] if argv is None else argv))
        print(f"model: {cfg} ({cfg.num_params():,} parameters)")
        print(
            f"training: {tcfg.max_steps} steps of {tcfg.grad_accum}×{tcfg.batch_size}×{cfg.block_size} tokens, "
            f"lr {tcfg.lr} → {tcfg.min_lr}, {tcfg.compute_dtype}{', remat' if tcfg.remat else ''}; run dir {tcfg.out}"
        )
        from minigpt.training.loop import train  # JAX: not needed for --help or a bad option

        summary = train(cfg, tcfg, resume=resume)
    except (ValueError, FileNotFoundError) as e:
        print(f"minigpt train: error: {e}", file=sys.stderr)
        return 2
    if summary["status"] == "nan":
        return 1
    print_summary(summary, tcfg)
    return 0


def print_summary(summary: dict, tcfg: TrainConfig) -> None:
    """The lines ``minigpt train`` ends with: where it stopped, the losses, the checkpoint, what to run next."""
    minutes, seconds = divmod(summary["wall_s"], 60)
    print(
        f"{summary['status']} at step {summary['step']} in {int(minutes)}m{seconds:04.1f}s: "
        f"train loss {summary['train_loss']:.4f}, val loss {summary['val_loss']:.4f} "
        f"(perplexity {summary['val_ppl']:.2f})"
    )
    print(f"checkpoint: {summary['checkpoint'] or 'no checkpoint has been saved yet'}")
    if "plot" in summary:
        print(f"loss curve: {summary['plot']}")
    if summary["status"] == "interrupted":
        print(f"resume with: minigpt train --resume --out {tcfg.out}")
    else:
        print(f"sample with: minigpt sample {tcfg.out}")

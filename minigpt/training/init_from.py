"""``minigpt train --init-from RUN_DIR|HF_DIR``: start a run from a pretrained model's weights.

Only the weights come from the source; the optimizer state, the schedule and the step counter start afresh
(step 0, warmup included). The model's shape is the source's: a model option that contradicts it is refused,
naming both sides (``dropout`` is not a shape and may be set). The data's tokenizer must be the source's, or
extend it: the source's tokens are the data's first ids, unchanged (``minigpt prepare-sentiment`` appends
``<pos>``/``<neg>`` this way). Then the rows of ``wte`` (and the columns of an untied ``lm_head``) of the
shared ids are copied and the new ones keep the fresh model's initialisation, GPT-2's N(0, 0.02)
(``minigpt.reference.init_params`` with the run's seed), so the logits of the shared ids are the source's
until the first step. Sources: a ``minigpt train`` run directory (``runs.load_run``: the newest checkpoint
that restores) or a Hugging Face GPT-2 / Llama / Qwen2 directory (``hub.load_pretrained``).

Importing this module imports no JAX: ``resolve_model`` runs before a run starts, from the files alone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from minigpt import data, hub
from minigpt.config import GPTConfig
from minigpt.hub import llama as hub_llama
from minigpt.params import Params, flatten_params, unflatten_params
from minigpt.tokenizers import ByteLevelBPE, load_tokenizer
from minigpt.training import runs
from minigpt.training.config import TrainConfig

NOT_SHAPE = frozenset({"dropout"})  # model options a run may change when it starts from a source


@dataclasses.dataclass(frozen=True)
class Source:
    """What ``--init-from`` names: its kind ('run' or 'hf'), model config and tokenizer (None if it has none)."""

    path: Path
    kind: str
    cfg: GPTConfig
    tokenizer: Any


def read_source(path: str | Path) -> Source:
    """The source's kind, config and tokenizer, without reading its weights (no JAX)."""
    p = Path(path)
    if (p / runs.CHECKPOINTS).is_dir():
        tok_dir = p / runs.TOKENIZER
        return Source(p, "run", GPTConfig.from_dict(runs.read_config(p)["model"]), _load_tok(tok_dir))
    if (p / hub.CONFIG_NAME).is_file() and (p / hub.WEIGHTS_NAME).is_file():
        cfg = _hf_config(p)
        tok = None
        if (p / "vocab.json").is_file() and (p / "merges.txt").is_file():
            tok = ByteLevelBPE.from_files(p / "vocab.json", p / "merges.txt")
        return Source(p, "hf", cfg, tok)
    raise FileNotFoundError(
        f"--init-from {p}: neither a minigpt run directory (with {runs.CHECKPOINTS}/) nor a Hugging Face directory "
        f"(with {hub.CONFIG_NAME} and {hub.WEIGHTS_NAME}); pass one of those"
    )


def _hf_config(p: Path) -> GPTConfig:
    """The GPTConfig of a Hugging Face directory's config.json (GPT-2, or Llama / Qwen2)."""
    try:
        hf = json.loads((p / hub.CONFIG_NAME).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"--init-from {p / hub.CONFIG_NAME}: corrupted ({e})") from None
    llama = isinstance(hf, dict) and hf.get("model_type") in hub_llama.MODEL_TYPES
    return hub_llama.config_from_llama(hf) if llama else hub.config_from_hf(hf)


def _load_tok(d: Path) -> Any:

    return load_tokenizer(d) if d.is_dir() else None


def resolve_model(tcfg: TrainConfig, model_over: dict[str, Any]) -> GPTConfig:
    """The run's model config: the source's, with the data's vocab_size; ValueError on any contradiction."""
    if Path(tcfg.out).resolve() == Path(tcfg.init_from).resolve():
        raise ValueError(f"--init-from {tcfg.init_from} is the run directory itself; continue it with --resume")
    src = read_source(tcfg.init_from)
    for name, value in model_over.items():
        if name not in NOT_SHAPE | {"vocab_size"} and getattr(src.cfg, name) != value:
            raise ValueError(
                f"--{name} {value!r} contradicts the --init-from source {src.path} "
                f"({name}={getattr(src.cfg, name)!r}); the model's shape comes from the source: omit the option"
            )
    vocab = check_tokenizer(src, tcfg.data)
    if "vocab_size" in model_over and model_over["vocab_size"] != vocab:
        raise ValueError(
            f"--vocab_size {model_over['vocab_size']} disagrees with the data's vocab_size {vocab}; omit it"
        )
    return src.cfg.replace(vocab_size=vocab, **{k: v for k, v in model_over.items() if k in NOT_SHAPE})


def check_tokenizer(src: Source, data_dir: str) -> int:
    """The data's vocab_size, after checking that its tokenizer equals or extends the source's (ValueError)."""
    vocab = data.load_meta(data_dir)["vocab_size"]
    both = (
        f"the --init-from source {src.path} (vocab_size {src.cfg.vocab_size}) and the data {data_dir} "
        f"(vocab_size {vocab})"
    )
    tok = _load_tok(Path(data_dir) / runs.TOKENIZER)
    if src.tokenizer is None or tok is None:
        if vocab != src.cfg.vocab_size:
            raise ValueError(f"{both} differ in vocab_size and a tokenizer is missing to compare; use matching data")
        return vocab
    if tok.kind != src.tokenizer.kind:
        raise ValueError(f"{both} use different tokenizers ({src.tokenizer.kind} vs {tok.kind}); prepare the data "
                         "with the source's tokenizer (minigpt prepare --vocab-corpora)")  # fmt: skip
    n = src.tokenizer.vocab_size
    if vocab < src.cfg.vocab_size or tok.vocab_size < n:
        raise ValueError(f"{both}: the data's vocabulary is smaller than the source's; prepare the data with the "
                         "source's tokenizer (minigpt prepare --vocab-corpora)")  # fmt: skip
    for i in range(n):
        a, b = src.tokenizer.id_to_token(i), tok.id_to_token(i)
        if a != b:
            raise ValueError(
                f"{both} have different tokenizers: id {i} is {a!r} in the source but {b!r} in the data; prepare "
                "both corpora with one tokenizer (minigpt prepare --vocab-corpora A,B)"
            )
    if getattr(src.tokenizer, "merges", None) != getattr(tok, "merges", None):
        raise ValueError(f"{both} have BPE tokenizers with different merges; prepare both with one tokenizer")
    return vocab


def transfer(source: Params, fresh: Params, src_cfg: GPTConfig) -> Params:
    """``fresh`` with every tensor of ``source`` copied in: wte rows and untied lm_head columns of the shared ids
    [0, V_src) are the source's, the rows/columns of new ids stay ``fresh``'s. Other shapes must agree."""
    V = src_cfg.vocab_size
    out = {}
    src_flat = flatten_params(source)
    for name, new in flatten_params(fresh).items():
        old = np.asarray(src_flat[name], dtype=new.dtype)
        if name == "wte.weight" and old.shape != new.shape:
            new = new.copy()
            new[:V] = old  # (V_src, C) shared rows
            out[name] = new
        elif name == "lm_head.weight" and old.shape != new.shape:
            new = new.copy()
            new[:, :V] = old  # (C, V_src) shared columns
            out[name] = new
        elif old.shape != new.shape:
            raise ValueError(f"--init-from: {name} has shape {old.shape} in the source but {new.shape} in the run")
        else:
            out[name] = old.copy()
    return unflatten_params(out)


def initial_params(cfg: GPTConfig, tcfg: TrainConfig, log: Callable[[str], None]) -> tuple[Params, dict]:
    """(float32 parameters for step 0, the record of where they came from) for a run with ``tcfg.init_from``."""
    from minigpt.training.step import init_params  # JAX: resolving a run's config (minigpt train --help) needs none

    src = read_source(tcfg.init_from)
    if src.kind == "run":
        loaded_cfg, params, _ = runs.load_run(src.path, warn=lambda m: log(f"warning: {m}"))
    else:
        loaded_cfg, params = hub.load_pretrained(src.path, dtype=np.float32)
    expected = cfg.replace(vocab_size=loaded_cfg.vocab_size, dropout=loaded_cfg.dropout)
    if loaded_cfg != expected:
        raise ValueError(f"--init-from {src.path}: its checkpoint holds {loaded_cfg}, its config says {src.cfg}")
    params = transfer(params, init_params(cfg, tcfg.seed), loaded_cfg)
    origin = {"path": str(src.path.resolve()), "kind": src.kind, "vocab_size": loaded_cfg.vocab_size}
    if cfg.vocab_size > loaded_cfg.vocab_size:
        origin["new_ids"] = [loaded_cfg.vocab_size, cfg.vocab_size]
    log(f"initialised from the {'run' if src.kind == 'run' else 'Hugging Face directory'} {src.path}")
    return params, origin

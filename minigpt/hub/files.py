"""A Hugging Face model directory's files, read and written with NumPy and safetensors only: no torch, no pickle.

    config.json                           the architecture's options (``minigpt.hub.gpt2`` / ``llama`` map them)
    model.safetensors                     the tensors, or shards listed in model.safetensors.index.json
    vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json   with a byte-level BPE tokenizer

Writing goes to temporary names first and renames at the end, so a failure leaves the old files intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from minigpt.config import GPTConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
END_OF_TEXT = "<|endoftext|>"

# Formats that cannot be read without running their loader's code (a .bin is a Python pickle).
UNSAFE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")

CONVERT_HINT = (
    "convert it once to safetensors, in an environment where you trust the file, with\n"
    '    python -c "from transformers import AutoModelForCausalLM as M; '
    "M.from_pretrained('{d}').save_pretrained('{d}', safe_serialization=True)\"\n"
    "(or download model.safetensors instead: the Hugging Face repositories ship one)"
)


def read_safetensors(file: Path, skip: Callable[[str], bool] = lambda name: False) -> dict[str, np.ndarray]:
    """Every tensor of one safetensors file whose name ``skip`` does not reject."""
    from safetensors import SafetensorError, safe_open  # safetensors: only when tensors are read

    try:
        with safe_open(str(file), framework="np") as f:
            # Skipped names are never read: GPT-2's mask buffers are 12 × (1, 1, 1024, 1024) floats in OpenAI's file.
            return {name: f.get_tensor(name) for name in f.keys() if not skip(name)}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ValueError(
            f"{file} is not a readable safetensors file ({e}); it may be truncated or corrupted: download it again"
        ) from e


def read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file} is not valid JSON ({e}); it may be truncated or corrupted") from e


def read_tensors(path: Path, skip: Callable[[str], bool] = lambda name: False) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint directory: one model.safetensors, or shards listed in its index."""
    if (path / WEIGHTS_NAME).is_file():
        return read_safetensors(path / WEIGHTS_NAME, skip)
    if (path / WEIGHTS_INDEX_NAME).is_file():
        index = read_json(path / WEIGHTS_INDEX_NAME)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(f"{path / WEIGHTS_INDEX_NAME} has no 'weight_map' object")
        tensors: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            if not (path / shard).is_file():
                raise FileNotFoundError(f"{path / shard} is listed in {WEIGHTS_INDEX_NAME} but missing")
            tensors.update(read_safetensors(path / shard, skip))
        missing = sorted(k for k in set(weight_map) - set(tensors) if not skip(k))
        if missing:
            raise ValueError(f"tensor {missing[0]!r} is listed in {WEIGHTS_INDEX_NAME} but in none of its shards")
        return tensors
    unsafe = [name for name in UNSAFE_WEIGHTS if (path / name).exists()]
    if unsafe:
        raise FileNotFoundError(
            f"{path} has {unsafe[0]} but no {WEIGHTS_NAME}. minigpt never unpickles files (loading a pickle "
            f"can run arbitrary code) and does not use torch; " + CONVERT_HINT.format(d=path)
        )
    raise FileNotFoundError(
        f"{path} has no {WEIGHTS_NAME} (found {sorted(p.name for p in path.iterdir()) or 'nothing'}); "
        f"a Hugging Face model directory needs {CONFIG_NAME} and {WEIGHTS_NAME}"
    )


def tokenizer_files(tokenizer: Any, tmp: Path, cfg: GPTConfig) -> int | None:
    """Let ``tokenizer.save(dir)`` write vocab.json + merges.txt into ``tmp``, check them, add the configs
    transformers' ``GPT2Tokenizer`` reads. Returns the id of <|endoftext|>, if the vocabulary has it."""
    if not callable(getattr(tokenizer, "save", None)):
        raise ValueError(
            f"tokenizer must have a save(directory) method writing GPT-2's vocab.json and merges.txt, "
            f"got {type(tokenizer).__name__}"
        )
    tokenizer.save(str(tmp))
    for name in ("vocab.json", "merges.txt"):
        if not (tmp / name).is_file():
            raise ValueError(
                f"tokenizer.save(directory) wrote no {name}; GPT2Tokenizer needs vocab.json and merges.txt"
            )
    vocab = read_json(tmp / "vocab.json")
    if not isinstance(vocab, dict) or not vocab:
        raise ValueError("the tokenizer's vocab.json must be a non-empty {token: id} object")
    top = max(vocab.values())
    if top >= cfg.vocab_size:
        raise ValueError(
            f"the tokenizer has token id {top} but the model's vocab_size is {cfg.vocab_size}; "
            f"they must agree (every id < vocab_size)"
        )
    eot = END_OF_TEXT if END_OF_TEXT in vocab else None
    tok_config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": cfg.block_size,
        "add_prefix_space": False,
        "errors": "replace",
        # Explicit None keeps transformers from appending a fresh <|endoftext|> beyond the vocabulary.
        "bos_token": eot,
        "eos_token": eot,
        "unk_token": eot,
    }
    (tmp / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2), encoding="utf-8")
    special = {"bos_token": eot, "eos_token": eot, "unk_token": eot} if eot else {}
    (tmp / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return vocab[eot] if eot else None


@contextmanager
def staged_files(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary directory inside ``path``: whatever is written there replaces ``path``'s files of the same
    names when the block ends without an error (one rename each); on an error nothing of ``path`` changes."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minigpt-save-", dir=path))
    try:
        yield tmp
        for file in sorted(tmp.iterdir()):
            if file.is_file():
                os.replace(file, path / file.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

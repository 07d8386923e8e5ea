"""``load_pretrained`` / ``save_pretrained``: a Hugging Face directory ↔ ``(GPTConfig, params)``.

The architecture is chosen by ``config.json``'s ``model_type`` when reading and by the model's options when
writing; each architecture is a module with one interface (``minigpt.hub.gpt2``, ``minigpt.hub.llama``)::

    MODEL_TYPES                      model_type → transformers class
    config_from(hf, dropout=)        config.json dict → GPTConfig, refusing what minigpt cannot compute
    config_to(cfg, dtype=, eot_id=)  GPTConfig → config.json dict, refusing what transformers cannot compute
    params_from(tensors, cfg, hf)    Hugging Face tensor names → the parameter layout
    params_to(params, cfg)           the parameter layout → Hugging Face tensor names
    is_buffer(name)                  stored tensors that are not parameters (GPT-2's mask buffers)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.hub import files, gpt2, llama
from minigpt.params import Params, flatten_params, params_dtype, unflatten_params, validate_params


def architecture_of_config(hf: Any) -> ModuleType:
    """The module that maps a ``config.json`` dict: Llama's for ``llama``/``qwen2``, else GPT-2's (which names
    the model types it reads when ``model_type`` is something else)."""
    return llama if isinstance(hf, dict) and hf.get("model_type") in llama.MODEL_TYPES else gpt2


def architecture_of_model(cfg: GPTConfig) -> ModuleType:
    """The module that writes a model: Llama's for a model with the Llama options, else GPT-2's."""
    return llama if llama.is_llama(cfg) else gpt2


def load_pretrained(
    path: str | os.PathLike, *, dtype: np.dtype | type | None = None, dropout: float | None = None
) -> tuple[GPTConfig, Params]:
    """Read a Hugging Face GPT-2, Llama or Qwen2 directory (``config.json`` + ``model.safetensors``) →
    ``(cfg, params)``.

    ``params`` is in the reference layout, ready for ``minigpt.reference.forward(params, idx, cfg)``
    or ``GPT.from_params(params, cfg)``. ``dtype`` casts every tensor (default: keep the stored dtype,
    which must be one for all tensors). Never reads a pickle: a ``pytorch_model.bin`` alone gives
    a message saying how to convert it.
    """
    path = Path(path)
    if not path.is_dir():
        if path.is_file():
            raise FileNotFoundError(f"{path} is a file; pass the checkpoint directory that holds it")
        raise FileNotFoundError(f"no checkpoint directory {path}")
    if not (path / files.CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{path} has no {files.CONFIG_NAME}; a Hugging Face model directory needs one")
    hf = files.read_json(path / files.CONFIG_NAME)
    arch = architecture_of_config(hf)
    cfg = arch.config_from(hf, dropout=dropout)
    params = arch.params_from(files.read_tensors(path, arch.is_buffer), cfg, hf)
    if dtype is not None:
        params = unflatten_params({k: v.astype(dtype, copy=False) for k, v in flatten_params(params).items()})
    else:
        params_dtype(params)  # one dtype for all tensors, or a clear error
    validate_params(params, cfg)
    return cfg, params


def save_pretrained(path: str | os.PathLike, cfg: GPTConfig, params: Params, tokenizer: Any = None) -> None:
    """Write a directory that ``transformers.GPT2LMHeadModel.from_pretrained(path)`` loads (offline), or
    ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` for a model with the Llama options (``llama.is_llama``).

    Files: config.json, model.safetensors (head tied) and, given a ``tokenizer`` whose ``save(dir)`` writes
    GPT-2's vocab.json + merges.txt, those two plus tokenizer_config.json and special_tokens_map.json for
    ``GPT2Tokenizer.from_pretrained(path)``. Everything is written under temporary names first, then renamed:
    a failure leaves old files intact.
    """
    from safetensors.numpy import save_file  # safetensors' writer: only saving needs it

    arch = architecture_of_model(cfg)
    arch.config_to(cfg)  # refuses what transformers cannot compute before anything is written
    tensors = arch.params_to(params, cfg)
    dtype = params_dtype(params)
    with files.staged_files(path) as tmp:
        eot_id = files.tokenizer_files(tokenizer, tmp, cfg) if tokenizer is not None else None
        hf_config = arch.config_to(cfg, dtype=dtype, eot_id=eot_id)
        save_file(tensors, str(tmp / files.WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / files.CONFIG_NAME).write_text(json.dumps(hf_config, indent=2), encoding="utf-8")

"""Hugging Face GPT-2 checkpoints in and out, with NumPy and safetensors only: no torch, no pickle.

A Hugging Face GPT-2 directory holds ``config.json`` (the shapes) and ``model.safetensors`` (the
tensors). Its tensor names are the reference layout's dotted names (``minigpt.params``) with a
``transformer.`` prefix, and its Conv1D weights are stored ``(in, out)`` exactly like ours, so the
conversion is a rename, never a transpose::

    transformer.wte.weight (V, C)                 ↔  params["wte"]["weight"]
    transformer.h.0.attn.c_attn.weight (C, 3C)    ↔  params["h"][0]["attn"]["c_attn"]["weight"]
    lm_head.weight (V, C)                         ↔  tied to wte: logits = LN_f(hᴸ) · wteᵀ
    transformer.h.{i}.attn.bias / .masked_bias    ↔  dropped: the causal mask kept as a buffer, not a weight

config.json ↔ GPTConfig: n_positions → block_size, n_embd, n_layer, n_head, vocab_size,
layer_norm_epsilon → layer_norm_eps, {resid,embd,attn}_pdrop → dropout. Everything in config.json
that would make Hugging Face compute a different function than minigpt (another activation, a
different MLP width, other attention scalings, cross-attention) is refused with the key named.

Llama and Qwen2 directories (``"model_type": "llama" | "qwen2"``) are read and written the same way, through
``minigpt.hub_llama`` (its docstring has their tensor names); ``save_pretrained`` writes one for a model
with the Llama options (RoPE, RMSNorm, SwiGLU, no biases, or Qwen2's q/k/v biases).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from minigpt import hub_llama
from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, param_shapes, params_dtype, unflatten_params, validate_params

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PREFIX = "transformer."
HEAD_NAME = "lm_head.weight"
END_OF_TEXT = "<|endoftext|>"

# Formats that cannot be read without running their loader's code (a .bin is a Python pickle).
_UNSAFE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
# Both compute 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), the GELU of GPT-2 and of minigpt.
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")
_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
# Hugging Face's causal-mask buffers: present in old checkpoints (e.g. OpenAI's gpt2), not parameters.
_BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
# config.json keys whose non-default values change the function the network computes.
_MUST_BE = {
    "scale_attn_weights": True,  # scores / √d_k
    "scale_attn_by_inverse_layer_idx": False,  # an extra 1/(layer+1)
    "reorder_and_upcast_attn": False,  # a different order of operations in the attention
    "add_cross_attention": False,  # an encoder-decoder block
}

_CONVERT_HINT = (
    "convert it once to safetensors, in an environment where you trust the file, with\n"
    '    python -c "from transformers import GPT2LMHeadModel as M; '
    "M.from_pretrained('{d}').save_pretrained('{d}', safe_serialization=True)\"\n"
    "(or download model.safetensors instead: the Hugging Face GPT-2 repositories ship one)"
)


# -- config.json ------------------------------------------------------------------------------------


def config_from_hf(hf: dict[str, Any], *, dropout: float | None = None) -> GPTConfig:
    """A ``GPTConfig`` from a Hugging Face GPT-2 ``config.json`` dict; refuses what minigpt cannot compute.

    ``dropout`` overrides the checkpoint's rates; by default resid_pdrop = embd_pdrop = attn_pdrop
    must agree (minigpt has one rate), else pass ``dropout=`` explicitly.
    """
    if not isinstance(hf, dict):
        raise ValueError(f"{CONFIG_NAME} must hold a JSON object, got {type(hf).__name__}")
    model_type = hf.get("model_type")
    if model_type != "gpt2":
        raise ValueError(
            f"{CONFIG_NAME}: 'model_type' is {model_type!r}, but minigpt only reads GPT-2 checkpoints ('gpt2') "
            f"and, through load_pretrained, {sorted(hub_llama.MODEL_TYPES)}"
        )
    architectures = hf.get("architectures") or []
    unknown = [a for a in architectures if a not in _ARCHITECTURES]
    if unknown:
        raise ValueError(
            f"{CONFIG_NAME}: 'architectures' lists {unknown}; minigpt reads only {list(_ARCHITECTURES)} "
            f"(a decoder-only language model with no extra heads)"
        )
    activation = hf.get("activation_function", "gelu_new")
    if activation not in _TANH_GELUS:
        raise ValueError(
            f"{CONFIG_NAME}: 'activation_function' is {activation!r}; minigpt's MLP uses the tanh GELU "
            f"of GPT-2 ('gelu_new'), so this checkpoint would compute a different function"
        )
    for key, default in _MUST_BE.items():
        if hf.get(key, default) is not default:
            raise ValueError(
                f"{CONFIG_NAME}: {key!r} is {hf[key]!r}; minigpt implements only the GPT-2 default {key}={default}"
            )

    def integer(key: str, fallback: str | None = None) -> int:
        if key not in hf and fallback in hf:
            key = fallback
        if key not in hf:
            raise ValueError(f"{CONFIG_NAME} has no {key!r}; a GPT-2 config needs it")
        value = hf[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{CONFIG_NAME}: {key!r} must be a positive integer, got {value!r}")
        return value

    n_embd = integer("n_embd")
    n_inner = hf.get("n_inner")
    if n_inner is not None and n_inner != 4 * n_embd:
        raise ValueError(
            f"{CONFIG_NAME}: 'n_inner' is {n_inner!r}, but minigpt's MLP width is 4·n_embd = {4 * n_embd} "
            f"(use n_inner null or {4 * n_embd})"
        )
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"{CONFIG_NAME}: 'layer_norm_epsilon' must be a positive number, got {eps!r}")
    if dropout is None:
        rates = {key: hf.get(key, 0.1) for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop")}
        if len(set(rates.values())) != 1:
            raise ValueError(
                f"{CONFIG_NAME}: dropout rates differ ({rates}) but minigpt has a single rate; "
                f"pass load_pretrained(..., dropout=<rate>) to choose one"
            )
        dropout = next(iter(rates.values()))
    try:
        return GPTConfig(
            vocab_size=integer("vocab_size"),
            block_size=integer("n_positions", fallback="n_ctx"),
            n_layer=integer("n_layer"),
            n_head=integer("n_head"),
            n_embd=n_embd,
            bias=True,
            dropout=float(dropout),
            layer_norm_eps=float(eps),
        )
    except ValueError as e:
        raise ValueError(f"{CONFIG_NAME} does not describe a valid model: {e}") from e


def config_to_hf(cfg: GPTConfig, *, dtype: np.dtype | None = None, eot_id: int | None = None) -> dict[str, Any]:
    """The ``config.json`` dict that makes ``transformers.GPT2LMHeadModel`` compute minigpt's function."""
    gpt2 = GPTConfig(cfg.vocab_size, cfg.block_size, cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.bias)
    changed = [
        f"{name}={getattr(cfg, name)!r}"
        for name in ("pos", "norm", "mlp", "mlp_width", "kv_heads", "tie_embeddings", "attn_bias")
        if getattr(cfg, name) != getattr(gpt2, name)
    ]
    if changed:
        raise ValueError(
            f"this model has {', '.join(changed)}, which neither GPT-2 nor Llama checkpoints express; GPT-2 "
            f"needs the defaults, Llama pos='rope', norm='rmsnorm', mlp='swiglu', bias=False"
        )
    if not cfg.bias:
        raise ValueError(
            "Hugging Face GPT-2 has a bias in every Linear and LayerNorm, and this model was built with "
            "bias=False; add zero biases to params (an exactly equivalent model) and save it with "
            "cfg.replace(bias=True)"
        )
    hf: dict[str, Any] = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.block_size,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.layer_norm_eps,
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "initializer_range": 0.02,
        **_MUST_BE,
        "tie_word_embeddings": True,
        "use_cache": True,
        # GPT-2 uses <|endoftext|> for both; without such a token there is none (not GPT-2's 50256).
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
    }
    if dtype is not None:
        hf["dtype"] = np.dtype(dtype).name
    return hf


# -- tensors -----------------------------------------------------------------------------------------


def params_from_hf(tensors: dict[str, np.ndarray], cfg: GPTConfig, *, tied: bool = True) -> Params:
    """Reference-layout params from Hugging Face GPT-2 tensor names (with or without ``transformer.``).

    The causal-mask buffers are dropped; ``lm_head.weight`` must equal ``wte.weight`` because
    minigpt ties its output head (``tied=False`` only makes a missing head an error).
    """
    flat: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    head = None
    for name, value in tensors.items():
        if name == HEAD_NAME:
            head = value
            continue
        key = name.removeprefix(PREFIX)
        if _BUFFER.fullmatch(key):
            continue
        if key in flat:
            raise ValueError(f"the checkpoint holds both {source[key]!r} and {name!r}; keep one")
        flat[key], source[key] = value, name
    expected = param_shapes(cfg)
    for key, shape in expected.items():
        if key not in flat:
            raise ValueError(f"the checkpoint has no tensor {PREFIX + key!r} (shape {shape} for {cfg})")
        got = tuple(flat[key].shape)
        if got != shape:
            raise ValueError(
                f"tensor {source[key]!r} has shape {got}, but {CONFIG_NAME} implies {shape} "
                f"(vocab_size={cfg.vocab_size}, n_positions={cfg.block_size}, n_embd={cfg.n_embd})"
            )
    extra = [source[key] for key in flat if key not in expected]
    if extra:
        raise ValueError(
            f"the checkpoint has tensor {extra[0]!r}, which is not part of GPT-2 with {cfg.n_layer} layers "
            f"({len(extra)} unexpected tensor(s) in all)"
        )
    if head is None and not tied:
        raise ValueError(
            f"{CONFIG_NAME} says 'tie_word_embeddings': false but the checkpoint has no {HEAD_NAME!r}; "
            f"the output head is missing"
        )
    if head is not None:
        wte = flat["wte.weight"]
        if head.shape != wte.shape or not np.array_equal(head, wte):
            diff = float(np.max(np.abs(head - wte))) if head.shape == wte.shape else float("nan")
            raise ValueError(
                f"the checkpoint's {HEAD_NAME!r} {tuple(head.shape)} differs from {PREFIX}wte.weight "
                f"(max |difference| {diff:.3g}): an untied output head. minigpt ties the head to the token "
                f"embedding (logits = h · wteᵀ) and cannot represent this model without changing it"
            )
    return unflatten_params({key: flat[key] for key in expected})


def params_to_hf(params: Params, cfg: GPTConfig) -> dict[str, np.ndarray]:
    """``{"transformer.h.0.attn.c_attn.weight": array, ...}``: C-contiguous NumPy, head left tied."""
    validate_params(params, cfg)
    return {PREFIX + k: np.ascontiguousarray(np.asarray(v)) for k, v in flatten_params(params).items()}


def _read_safetensors(file: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="np") as f:
            # Skip the mask buffers unread: 12 × (1, 1, 1024, 1024) floats in OpenAI's gpt2 file.
            return {name: f.get_tensor(name) for name in f.keys() if not _BUFFER.fullmatch(name.removeprefix(PREFIX))}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ValueError(
            f"{file} is not a readable safetensors file ({e}); it may be truncated or corrupted: download it again"
        ) from e


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file} is not valid JSON ({e}); it may be truncated or corrupted") from e


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint directory: one model.safetensors, or shards listed in its index."""
    if (path / WEIGHTS_NAME).is_file():
        return _read_safetensors(path / WEIGHTS_NAME)
    if (path / WEIGHTS_INDEX_NAME).is_file():
        index = _read_json(path / WEIGHTS_INDEX_NAME)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise ValueError(f"{path / WEIGHTS_INDEX_NAME} has no 'weight_map' object")
        tensors: dict[str, np.ndarray] = {}
        for shard in sorted(set(weight_map.values())):
            if not (path / shard).is_file():
                raise FileNotFoundError(f"{path / shard} is listed in {WEIGHTS_INDEX_NAME} but missing")
            tensors.update(_read_safetensors(path / shard))
        missing = sorted(k for k in set(weight_map) - set(tensors) if not _BUFFER.fullmatch(k.removeprefix(PREFIX)))
        if missing:
            raise ValueError(f"tensor {missing[0]!r} is listed in {WEIGHTS_INDEX_NAME} but in none of its shards")
        return tensors
    unsafe = [name for name in _UNSAFE_WEIGHTS if (path / name).exists()]
    if unsafe:
        raise FileNotFoundError(
            f"{path} has {unsafe[0]} but no {WEIGHTS_NAME}. minigpt never unpickles files (loading a pickle "
            f"can run arbitrary code) and does not use torch; " + _CONVERT_HINT.format(d=path)
        )
    raise FileNotFoundError(
        f"{path} has no {WEIGHTS_NAME} (found {sorted(p.name for p in path.iterdir()) or 'nothing'}); "
        f"a Hugging Face GPT-2 directory needs {CONFIG_NAME} and {WEIGHTS_NAME}"
    )


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
    if not (path / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{path} has no {CONFIG_NAME}; a Hugging Face GPT-2 directory needs one")
    hf = _read_json(path / CONFIG_NAME)
    llama = isinstance(hf, dict) and hf.get("model_type") in hub_llama.MODEL_TYPES
    cfg = hub_llama.config_from_llama(hf, dropout=dropout) if llama else config_from_hf(hf, dropout=dropout)
    tensors = _read_tensors(path)
    if llama:
        params = hub_llama.params_from_llama(tensors, cfg)
    else:
        params = params_from_hf(tensors, cfg, tied=hf.get("tie_word_embeddings", True) is not False)
    if dtype is not None:
        params = unflatten_params({k: v.astype(dtype, copy=False) for k, v in flatten_params(params).items()})
    else:
        params_dtype(params)  # one dtype for all tensors, or a clear error
    validate_params(params, cfg)
    return cfg, params


# -- writing -----------------------------------------------------------------------------------------


def _tokenizer_files(tokenizer: Any, tmp: Path, cfg: GPTConfig) -> int | None:
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
    vocab = _read_json(tmp / "vocab.json")
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


def save_pretrained(path: str | os.PathLike, cfg: GPTConfig, params: Params, tokenizer: Any = None) -> None:
    """Write a directory that ``transformers.GPT2LMHeadModel.from_pretrained(path)`` loads (offline), or
    ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` for a model with the Llama options (``hub_llama.is_llama``).

    Files: config.json, model.safetensors (``transformer.*`` names, head tied) and, given a
    ``tokenizer`` whose ``save(dir)`` writes GPT-2's vocab.json + merges.txt, those two plus
    tokenizer_config.json and special_tokens_map.json for ``GPT2Tokenizer.from_pretrained(path)``.
    Everything is written under temporary names first, then renamed: a failure leaves old files intact.
    """
    from safetensors.numpy import save_file

    llama = hub_llama.is_llama(cfg)
    to_config = hub_llama.config_to_llama if llama else config_to_hf
    hf_config = to_config(cfg)  # refuses what transformers cannot compute before anything is written
    tensors = hub_llama.params_to_llama(params, cfg) if llama else params_to_hf(params, cfg)
    dtype = params_dtype(params)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".minigpt-save-", dir=path))
    try:
        eot_id = _tokenizer_files(tokenizer, tmp, cfg) if tokenizer is not None else None
        hf_config = to_config(cfg, dtype=dtype, eot_id=eot_id)
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
        for file in sorted(tmp.iterdir()):
            if file.is_file():
                os.replace(file, path / file.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""GPT-2's mapping: Hugging Face ``config.json`` and tensor names ↔ ``GPTConfig`` and the parameter layout.

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

The directory's files (reading, writing, the tokenizer) are ``minigpt.hub.files``; ``minigpt.hub.pretrained``
chooses this module or ``minigpt.hub.llama`` by ``model_type``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.hub.files import CONFIG_NAME
from minigpt.params import Params, flatten_params, param_shapes, unflatten_params, validate_params

MODEL_TYPES = {"gpt2": "GPT2LMHeadModel"}
PREFIX = "transformer."
HEAD_NAME = "lm_head.weight"

# Both compute 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))), the GELU of GPT-2 and of minigpt.
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")
_ARCHITECTURES = ("GPT2LMHeadModel", "GPT2Model")
# Hugging Face's causal-mask buffers: present in old checkpoints (e.g. OpenAI's gpt2), not parameters.
BUFFER = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
# config.json keys whose non-default values change the function the network computes.
_MUST_BE = {
    "scale_attn_weights": True,  # scores / √d_k
    "scale_attn_by_inverse_layer_idx": False,  # an extra 1/(layer+1)
    "reorder_and_upcast_attn": False,  # a different order of operations in the attention
    "add_cross_attention": False,  # an encoder-decoder block
}


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
            f"(minigpt.hub.load_pretrained reads Llama and Qwen2 ones too)"
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
        if BUFFER.fullmatch(key):
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


# -- the architecture interface of minigpt.hub.pretrained -----------------------------------------------


def is_buffer(name: str) -> bool:
    """Hugging Face's causal-mask buffers (``h.{i}.attn.bias`` / ``masked_bias``): stored, but not parameters."""
    return BUFFER.fullmatch(name.removeprefix(PREFIX)) is not None


def config_from(hf: dict[str, Any], *, dropout: float | None = None) -> GPTConfig:
    return config_from_hf(hf, dropout=dropout)


def config_to(cfg: GPTConfig, *, dtype: np.dtype | None = None, eot_id: int | None = None) -> dict[str, Any]:
    return config_to_hf(cfg, dtype=dtype, eot_id=eot_id)


def params_from(tensors: dict[str, np.ndarray], cfg: GPTConfig, hf: dict[str, Any]) -> Params:
    return params_from_hf(tensors, cfg, tied=hf.get("tie_word_embeddings", True) is not False)


def params_to(params: Params, cfg: GPTConfig) -> dict[str, np.ndarray]:
    return params_to_hf(params, cfg)

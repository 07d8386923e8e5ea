"""transformers' Llama (and Qwen2) checkpoints ↔ minigpt's config and parameter layout, with NumPy only.

``minigpt.hub.load_pretrained`` / ``save_pretrained`` call these when ``config.json`` says ``"model_type":
"llama"`` or ``"qwen2"``, or when the model has the Llama options. torch's ``nn.Linear`` stores weights
(out, in), so every projection is transposed into minigpt's (in, out), and q, k and v are fused::

    model.embed_tokens.weight (V, C)                     ↔  wte.weight
    model.layers.{i}.input_layernorm.weight              ↔  h.{i}.ln_1.weight            (RMSNorm γ)
    model.layers.{i}.self_attn.{q,k,v}_proj.weight       ↔  h.{i}.attn.c_attn.weight = [Wqᵀ | Wkᵀ | Wvᵀ]
    model.layers.{i}.self_attn.{q,k,v}_proj.bias (Qwen2) ↔  h.{i}.attn.c_attn.bias   = [bq | bk | bv]
    model.layers.{i}.self_attn.o_proj.weight             ↔  h.{i}.attn.c_proj.weightᵀ
    model.layers.{i}.post_attention_layernorm.weight     ↔  h.{i}.ln_2.weight
    model.layers.{i}.mlp.{gate,up,down}_proj.weight      ↔  h.{i}.mlp.{c_gate,c_fc,c_proj}.weightᵀ
    model.norm.weight                                    ↔  ln_f.weight
    lm_head.weight (V, C)                                ↔  lm_head.weightᵀ (C, V), absent when tied

Both use RoPE's half-split pairing (``rotate_half``) on the q and k heads as laid out in q_proj / k_proj,
which is minigpt's, so no permutation of rows is needed. Anything in config.json that would make transformers
compute a different function (another activation, rope scaling, sliding windows, biases elsewhere) is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, param_shapes, unflatten_params, validate_params

CONFIG_NAME = "config.json"
MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
# config.json keys whose values other than these change the function the network computes.
_MUST_BE = {
    "llama": {"hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1},
    "qwen2": {"hidden_act": "silu", "use_sliding_window": False},
}
_LINEARS = {"attn.c_proj": "self_attn.o_proj", "mlp.c_gate": "mlp.gate_proj", "mlp.c_fc": "mlp.up_proj",
            "mlp.c_proj": "mlp.down_proj"}  # fmt: skip
_NORMS = {"ln_1": "input_layernorm", "ln_2": "post_attention_layernorm"}


def is_llama(cfg: GPTConfig) -> bool:
    """Whether ``cfg`` is a model transformers' Llama or Qwen2 computes (RoPE, RMSNorm, SwiGLU, no biases
    other than Qwen2's on q, k and v)."""
    return cfg.pos == "rope" and cfg.norm == "rmsnorm" and cfg.mlp == "swiglu" and not cfg.bias


def _rope_theta(hf: dict[str, Any]) -> float:
    """θ from transformers 5's ``rope_parameters`` or older configs' top-level ``rope_theta``; only plain RoPE."""
    rope = hf.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise ValueError(f"{CONFIG_NAME}: 'rope_parameters' must be an object, got {rope!r}")
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind != "default" or hf.get("rope_scaling") not in (None, {}):
        raise ValueError(
            f"{CONFIG_NAME}: rope_type {kind!r} / 'rope_scaling' {hf.get('rope_scaling')!r} rescales RoPE's "
            f"frequencies; minigpt implements only the default rotary embedding (rope_type 'default', no scaling)"
        )
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise ValueError(f"{CONFIG_NAME}: 'rope_theta' must be a number, got {theta!r}")
    return float(theta)


def config_from_llama(hf: dict[str, Any], *, dropout: float | None = None) -> GPTConfig:
    """A ``GPTConfig`` from a transformers Llama / Qwen2 ``config.json`` dict; refuses what minigpt cannot compute."""
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"{CONFIG_NAME}: 'model_type' is {model_type!r}; expected one of {sorted(MODEL_TYPES)}")
    unknown = [a for a in hf.get("architectures") or [] if a != MODEL_TYPES[model_type]]
    if unknown:
        raise ValueError(
            f"{CONFIG_NAME}: 'architectures' lists {unknown}; minigpt reads only {MODEL_TYPES[model_type]!r} "
            f"(a decoder-only language model with no extra heads)"
        )
    for key, want in _MUST_BE[model_type].items():
        if hf.get(key, want) != want:
            raise ValueError(f"{CONFIG_NAME}: {key!r} is {hf[key]!r}; minigpt implements only {key}={want!r}")

    def integer(key: str) -> int:
        value = hf.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{CONFIG_NAME}: {key!r} must be a positive integer, got {value!r}")
        return value

    C, H = integer("hidden_size"), integer("num_attention_heads")
    head_dim = hf.get("head_dim")
    if head_dim is not None and head_dim * H != C:
        raise ValueError(
            f"{CONFIG_NAME}: 'head_dim' is {head_dim}, but minigpt's heads are hidden_size / num_attention_heads "
            f"= {C / H:g} wide (use head_dim null or {C // H})"
        )
    F = integer("intermediate_size")
    H_kv = H if hf.get("num_key_value_heads") is None else integer("num_key_value_heads")
    eps = hf.get("rms_norm_eps", 1e-6)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
        raise ValueError(f"{CONFIG_NAME}: 'rms_norm_eps' must be a positive number, got {eps!r}")
    try:
        return GPTConfig(
            vocab_size=integer("vocab_size"),
            block_size=integer("max_position_embeddings"),
            n_layer=integer("num_hidden_layers"),
            n_head=H,
            n_embd=C,
            bias=False,
            dropout=float(hf.get("attention_dropout", 0.0) if dropout is None else dropout),
            layer_norm_eps=float(eps),
            pos="rope",
            rope_theta=_rope_theta(hf),
            norm="rmsnorm",
            mlp="swiglu",
            mlp_hidden=None if F == 4 * C else F,  # the defaults stay None, so that presets round-trip equal
            n_kv_head=None if H_kv == H else H_kv,
            tie_embeddings=hf.get("tie_word_embeddings", False) is True,
            qkv_bias=True if model_type == "qwen2" else None,
        )
    except ValueError as e:
        raise ValueError(f"{CONFIG_NAME} does not describe a valid model: {e}") from e


def config_to_llama(cfg: GPTConfig, *, dtype: np.dtype | None = None, eot_id: int | None = None) -> dict[str, Any]:
    """The ``config.json`` dict that makes transformers' ``LlamaForCausalLM`` (or, with ``qkv_bias``,
    ``Qwen2ForCausalLM``) compute minigpt's function."""
    if not is_llama(cfg):
        raise ValueError(
            "a Llama checkpoint needs pos='rope', norm='rmsnorm', mlp='swiglu' and bias=False (qkv_bias=True "
            f"for Qwen2); this model has pos={cfg.pos!r}, norm={cfg.norm!r}, mlp={cfg.mlp!r}, bias={cfg.bias}"
        )
    model_type = "qwen2" if cfg.attn_bias else "llama"
    hf: dict[str, Any] = {
        "architectures": [MODEL_TYPES[model_type]],
        "model_type": model_type,
        "vocab_size": cfg.vocab_size,
        "max_position_embeddings": cfg.block_size,
        "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.mlp_width,
        "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_size,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.layer_norm_eps,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "attention_dropout": cfg.dropout,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        **_MUST_BE[model_type],
    }
    if dtype is not None:
        hf["dtype"] = np.dtype(dtype).name
    return hf


def params_from_llama(tensors: dict[str, np.ndarray], cfg: GPTConfig) -> Params:
    """Reference-layout params from transformers Llama / Qwen2 tensor names (see the module docstring)."""
    names = _names(cfg)
    used = set()

    def take(name: str) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"the checkpoint has no tensor {name!r} (needed for {cfg})")
        used.add(name)
        return tensors[name]

    flat: dict[str, np.ndarray] = {}
    for ours, theirs in names.items():
        if ours.endswith("c_attn.weight") or ours.endswith("c_attn.bias"):
            leaf = ours.rsplit(".", 1)[1]
            parts = [take(f"{theirs}.{x}_proj.{leaf}") for x in "qkv"]
            flat[ours] = np.concatenate([p.T for p in parts] if leaf == "weight" else parts, axis=-1)
        elif _is_linear(ours):
            flat[ours] = take(theirs).T
        else:
            flat[ours] = take(theirs)
    head = tensors.get("lm_head.weight")
    if cfg.tie_embeddings and head is not None:
        used.add("lm_head.weight")
        if head.shape != flat["wte.weight"].shape or not np.array_equal(head, flat["wte.weight"]):
            raise ValueError(
                f"{CONFIG_NAME} says 'tie_word_embeddings': true but the checkpoint's 'lm_head.weight' differs "
                f"from 'model.embed_tokens.weight'; set it false to keep the separate head"
            )
    extra = sorted(set(tensors) - used)
    if extra:
        raise ValueError(
            f"the checkpoint has tensor {extra[0]!r}, which is not part of this {cfg.n_layer}-layer model "
            f"({len(extra)} unexpected tensor(s) in all)"
        )
    expected = param_shapes(cfg)
    for key, shape in expected.items():
        if tuple(flat[key].shape) != shape:
            raise ValueError(
                f"the checkpoint's tensors for {key!r} give shape {tuple(flat[key].shape)}, but {CONFIG_NAME} "
                f"implies {shape} (hidden_size={cfg.n_embd}, heads {cfg.n_head}/{cfg.kv_heads}, "
                f"intermediate_size={cfg.mlp_width}, vocab_size={cfg.vocab_size})"
            )
    return unflatten_params({key: np.ascontiguousarray(flat[key]) for key in expected})


def params_to_llama(params: Params, cfg: GPTConfig) -> dict[str, np.ndarray]:
    """transformers' tensor names and (out, in) layout, C-contiguous NumPy; no lm_head when tied."""
    validate_params(params, cfg)
    flat = {k: np.asarray(v) for k, v in flatten_params(params).items()}
    H, H_kv, d = cfg.n_head, cfg.kv_heads, cfg.head_size
    out: dict[str, np.ndarray] = {}
    for ours, theirs in _names(cfg).items():
        value = flat[ours]
        if ours.endswith("c_attn.weight") or ours.endswith("c_attn.bias"):
            leaf = ours.rsplit(".", 1)[1]
            q, k, v = np.split(value, [H * d, (H + H_kv) * d], axis=-1)
            for x, part in zip("qkv", (q, k, v), strict=True):
                out[f"{theirs}.{x}_proj.{leaf}"] = part.T if leaf == "weight" else part
        elif _is_linear(ours):
            out[theirs] = value.T
        else:
            out[theirs] = value
    return {k: np.ascontiguousarray(v) for k, v in out.items()}


def _is_linear(name: str) -> bool:
    """A Linear weight: stored (in, out) here and (out, in) by torch."""
    return name == "lm_head.weight" or (name.endswith(".weight") and (".attn." in name or ".mlp." in name))


def _names(cfg: GPTConfig) -> dict[str, str]:
    """minigpt name → transformers name (for c_attn: the prefix of the q/k/v projections)."""
    names = {"wte.weight": "model.embed_tokens.weight"}
    for i in range(cfg.n_layer):
        ours, theirs = f"h.{i}", f"model.layers.{i}"
        for a, b in _NORMS.items():
            names[f"{ours}.{a}.weight"] = f"{theirs}.{b}.weight"
        names[f"{ours}.attn.c_attn.weight"] = f"{theirs}.self_attn"
        if cfg.attn_bias:
            names[f"{ours}.attn.c_attn.bias"] = f"{theirs}.self_attn"
        for a, b in _LINEARS.items():
            names[f"{ours}.{a}.weight"] = f"{theirs}.{b}.weight"
    names["ln_f.weight"] = "model.norm.weight"
    if not cfg.tie_embeddings:
        names["lm_head.weight"] = "lm_head.weight"
    return names


# -- the architecture interface of minigpt.hub.pretrained -----------------------------------------------


def is_buffer(name: str) -> bool:
    """No Llama or Qwen2 tensor is a buffer: every stored one is a parameter."""
    return False


def config_from(hf: dict[str, Any], *, dropout: float | None = None) -> GPTConfig:
    return config_from_llama(hf, dropout=dropout)


def config_to(cfg: GPTConfig, *, dtype: np.dtype | None = None, eot_id: int | None = None) -> dict[str, Any]:
    return config_to_llama(cfg, dtype=dtype, eot_id=eot_id)


def params_from(tensors: dict[str, np.ndarray], cfg: GPTConfig, hf: dict[str, Any]) -> Params:
    return params_from_llama(tensors, cfg)


def params_to(params: Params, cfg: GPTConfig) -> dict[str, np.ndarray]:
    return params_to_llama(params, cfg)

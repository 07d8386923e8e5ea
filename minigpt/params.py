"""The one parameter layout, shared by the NumPy reference, the Flax model and checkpoint files.

A nested dict named like GPT-2's checkpoint (Hugging Face's ``transformer.*`` without the
prefix); linear weights are stored ``(in, out)`` so every implementation reads ``y = x @ W + b``::

    wte.weight (V, C)              token embedding; also the (tied) lm head
    wpe.weight (T_max, C)          position embedding
    h.{i}.ln_1.{weight,bias} (C,)
    h.{i}.attn.c_attn.weight (C, 3C)  .bias (3C,)   fused [Q | K | V]
    h.{i}.attn.c_proj.weight (C, C)   .bias (C,)    Wᴼ
    h.{i}.ln_2.{weight,bias} (C,)
    h.{i}.mlp.c_fc.weight (C, 4C)     .bias (4C,)
    h.{i}.mlp.c_proj.weight (4C, C)   .bias (C,)
    ln_f.{weight,bias} (C,)

``params["h"]`` is a list (block i is ``params["h"][i]``); with ``bias=False`` there are no
``bias`` entries. ``flatten_params`` gives the dotted names above.

The Llama options (``minigpt.config``) keep these names and change only what they must::

    pos="rope"             no wpe.weight
    n_kv_head=H_kv         c_attn (C, (H + 2·H_kv)·d_k): [Q | K | V] with H query and H_kv key/value heads
    mlp="swiglu"           h.{i}.mlp.c_gate (C, F) beside c_fc (C, F) ("up"); c_proj (F, C) ("down")
    mlp_hidden=F           F instead of 4C
    qkv_bias=True          c_attn.bias alone, even with bias=False (Qwen2)
    tie_embeddings=False   lm_head.weight (C, V), stored (in, out) like every Linear: logits = h W

"""

from __future__ import annotations

from typing import Any

import numpy as np

from minigpt.config import GPTConfig

Params = dict[str, Any]


def param_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Dotted name → shape for every tensor of a model with config ``cfg``, in canonical order."""
    C, V, T, F = cfg.n_embd, cfg.vocab_size, cfg.block_size, cfg.mlp_width
    qkv = (cfg.n_head + 2 * cfg.kv_heads) * cfg.head_size  # 3C for GPT-2
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (V, C)}
    if cfg.pos == "learned":
        shapes["wpe.weight"] = (T, C)

    def add(name: str, w_shape: tuple[int, ...], b_dim: int, bias: bool = cfg.bias) -> None:
        shapes[f"{name}.weight"] = w_shape
        if bias:
            shapes[f"{name}.bias"] = (b_dim,)

    for i in range(cfg.n_layer):
        p = f"h.{i}"
        add(f"{p}.ln_1", (C,), C)
        add(f"{p}.attn.c_attn", (C, qkv), qkv, cfg.attn_bias)
        add(f"{p}.attn.c_proj", (C, C), C)
        add(f"{p}.ln_2", (C,), C)
        if cfg.mlp == "swiglu":
            add(f"{p}.mlp.c_gate", (C, F), F)
        add(f"{p}.mlp.c_fc", (C, F), F)
        add(f"{p}.mlp.c_proj", (F, C), C)
    add("ln_f", (C,), C)
    if not cfg.tie_embeddings:
        shapes["lm_head.weight"] = (C, V)
    return shapes


def flatten_params(params: Params) -> dict[str, Any]:
    """Nested layout → ``{"h.0.attn.c_attn.weight": array, ...}``."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, (list, tuple)):
            items = ((str(i), v) for i, v in enumerate(node))
        else:
            flat[prefix] = node
            return
        for key, value in items:
            walk(value, f"{prefix}.{key}" if prefix else str(key))

    walk(params, "")
    return flat


def unflatten_params(flat: dict[str, Any]) -> Params:
    """Inverse of ``flatten_params``: ``h`` becomes a list of per-block dicts."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        node = nested
        *parents, leaf = name.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if "h" in nested:
        blocks = nested["h"]
        keys = sorted(blocks, key=lambda k: int(k) if k.isdigit() else -1)
        if keys != [str(i) for i in range(len(keys))]:
            raise ValueError(f"block names under 'h' must be 0..{len(keys) - 1}, got {sorted(blocks)}")
        nested["h"] = [blocks[k] for k in keys]
    return nested


def validate_params(params: Params, cfg: GPTConfig) -> None:
    """Raise ``ValueError`` naming the first missing, unexpected or misshaped tensor."""
    if not isinstance(params, dict):
        raise ValueError(f"params must be a nested dict in the GPT-2 layout, got {type(params).__name__}")
    flat = flatten_params(params)
    expected = param_shapes(cfg)
    for name, shape in expected.items():
        if name not in flat:
            raise ValueError(f"parameter {name!r} is missing (expected shape {shape} for {cfg})")
        got = tuple(np.shape(flat[name]))
        if got != shape:
            raise ValueError(f"parameter {name!r} has shape {got}, expected {shape} for {cfg}")
        dtype = np.dtype(getattr(flat[name], "dtype", np.asarray(flat[name]).dtype))
        if not np.issubdtype(dtype, np.floating) and dtype.name != "bfloat16":
            raise ValueError(f"parameter {name!r} has dtype {dtype}, expected a floating-point dtype")
    extra = [name for name in flat if name not in expected]
    if extra:
        raise ValueError(f"unexpected parameter {extra[0]!r} (not part of the layout for {cfg})")


def params_dtype(params: Params) -> np.dtype:
    """The single floating dtype of all tensors; mixed dtypes are an error."""
    dtypes = {np.dtype(a.dtype) for a in flatten_params(params).values()}
    if len(dtypes) != 1:
        raise ValueError(f"parameters mix dtypes {sorted(map(str, dtypes))}; cast them to one dtype")
    return dtypes.pop()


def map_params(fn: Any, params: Params) -> Params:
    """Apply ``fn`` to every tensor, keeping the layout."""
    return unflatten_params({k: fn(v) for k, v in flatten_params(params).items()})


def weight_decay_mask(params: Params) -> Params:
    """True where AdamW applies weight decay: the matrices of the Linear layers (c_attn, c_proj, c_fc, c_gate,
    and an untied lm_head), and LoRA's A and B (``minigpt.adapters``: decay pulls the update towards the base).

    As in GPT-2/minGPT practice, biases, norm gains and the embeddings (wte, which is also the
    tied lm head, and wpe) are not decayed. Same layout as ``params``; shared by the NumPy AdamW and Optax.
    """

    def decayed(name: str) -> bool:
        if name == "lm_head.weight" or name.endswith((".A", ".B")):
            return True
        return name.endswith(".weight") and (".attn." in name or ".mlp." in name)

    return unflatten_params({name: decayed(name) for name in flatten_params(params)})

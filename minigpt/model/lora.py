"""LoRA for the JAX model: adapters attached to the one ``GPT``'s ``Linear`` layers, unmerged or merged.

    y = x W + b + s · (x A) B,   s = α / r        (unmerged: ``apply(..., lora=adapters, lora_scale=s)``)
    W' = W + s · A B                             (merged: ``merge(params, adapters, s)``, then plain ``apply``)

The adapter layout, ``LoraSpec`` and the initialisation (A ~ N(0, 1/in), B = 0) are ``minigpt.adapters``'.
Training differentiates only with respect to the adapters — ``jax.grad`` of a function of ``adapters`` with the
base params closed over — so no gradient of a base weight is ever computed (``minigpt.training.step``).

For code that holds params (a classifier trunk, say)::

    from minigpt.model import apply, lora
    spec = lora.LoraSpec(rank=8, alpha=16, targets="c_attn,c_proj")
    adapters = lora.init_adapters(cfg, spec, seed=0)
    loss = lambda ad: my_loss(apply(params, idx, cfg, lora=ad, lora_scale=spec.scale, output="hidden"))
    grads = jax.grad(loss)(adapters)               # adapters' shapes only; params stay as they are
    merged = lora.merge(params, adapters, spec.scale)  # plain params for apply, sampling, export

On a ``GPT`` module: ``attach(model, adapters, scale)``, then ``nnx.state(model, Adapter)`` is the trainable state.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

from minigpt.adapters import LoraSpec, adapted_layers, init_adapters, parse_targets, validate_adapters
from minigpt.model.layers import Adapter, Linear
from minigpt.params import Params, flatten_params, unflatten_params

__all__ = [
    "Adapter",
    "LoraSpec",
    "attach",
    "init_adapters",
    "merge",
    "parse_targets",
    "validate_adapters",
]


def attach(model: Any, adapters: Params, scale: float, dtype: Any = None) -> Any:
    """Give each adapted ``Linear`` of ``model`` its A, B (as ``Adapter`` variables) and scale s; returns model.

    Works inside ``jit`` (the adapters may be tracers); ``dtype`` casts them like ``apply``'s dtype casts params.
    """
    flat = flatten_params(adapters)
    for layer in adapted_layers(adapters):
        node = model
        for part in layer.split("."):
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        if not isinstance(node, Linear):
            raise ValueError(f"adapter {layer!r} does not name a Linear layer of this model")
        A, B = (jnp.asarray(flat[f"{layer}.{m}"]) for m in ("A", "B"))
        if dtype is not None:
            A, B = A.astype(dtype), B.astype(dtype)
        # nnx.data: the attributes start as None, which NNX records as static; adapters are data
        node.lora_A, node.lora_B, node.lora_scale = nnx.data(Adapter(A)), nnx.data(Adapter(B)), scale
    return model


def merge(params: Params, adapters: Params, scale: float) -> Params:
    """``params`` with W' = W + s · A B in every adapted layer (JAX arrays; other tensors passed through)."""
    flat, ad = flatten_params(params), flatten_params(adapters)
    for layer in adapted_layers(adapters):
        W = flat[f"{layer}.weight"]
        flat[f"{layer}.weight"] = W + scale * (jnp.asarray(ad[f"{layer}.A"]) @ jnp.asarray(ad[f"{layer}.B"]))
    return unflatten_params(flat)

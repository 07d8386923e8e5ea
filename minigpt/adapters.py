"""The LoRA adapter layout, shared by the NumPy reference, the JAX model, training and the run directory.

LoRA (Hu et al., 2021) adapts a frozen linear layer y = x W + b by a low-rank update::

    y = x W + b + s · (x A) B,     s = α / r,   A (in, r), B (r, out),   merged: W' = W + s · A B

Adapters live in their own nested dict keyed like the parameters they adapt (``minigpt.params``), with
``A`` and ``B`` in place of ``weight`` and ``bias``; ``flatten_params`` gives dotted names::

    h.{i}.attn.c_attn.{A,B}   h.{i}.attn.c_proj.{A,B}   h.{i}.mlp.c_fc.{A,B}   h.{i}.mlp.c_proj.{A,B}
    h.{i}.mlp.c_gate.{A,B}    (mlp="swiglu" only)

``LoraSpec(rank, alpha, targets)`` says which layers get adapters; a target is a layer name inside a block,
short (``c_proj`` means both attn.c_proj and mlp.c_proj) or qualified (``mlp.c_proj``). Initialisation
(``init_adapters``): A ~ N(0, 1/in) (Kaiming-normal for a linear map, so x A has the scale of x's entries),
B = 0 — the adapted model starts exactly equal to the base.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, param_shapes, unflatten_params

LAYERS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj", "mlp.c_gate")  # adaptable, inside each block
SHORT = {"c_attn": ("attn.c_attn",), "c_proj": ("attn.c_proj", "mlp.c_proj"), "c_fc": ("mlp.c_fc",)}
SHORT["c_gate"] = ("mlp.c_gate",)
TARGET_NAMES = (*SHORT, *LAYERS)
DEFAULT_TARGETS = "attn.c_attn,attn.c_proj"  # the attention's projections, which the LoRA paper adapts


def parse_targets(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Comma-separated (or listed) target names → the qualified layer names, in ``LAYERS`` order.

    ValueError naming the valid names for an unknown one, or for an empty list.
    """
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if not names:
        raise ValueError(f"LoRA needs at least one target layer; choose from {', '.join(TARGET_NAMES)}")
    chosen: set[str] = set()
    for name in names:
        if name not in TARGET_NAMES:
            raise ValueError(f"unknown LoRA target {name!r}; valid targets: {', '.join(TARGET_NAMES)}")
        chosen.update(SHORT.get(name, (name,)))
    return tuple(layer for layer in LAYERS if layer in chosen)


@dataclass(frozen=True)
class LoraSpec:
    """Rank r, scale numerator α (s = α / r) and the qualified target layers of a LoRA fine-tuning."""

    rank: int
    alpha: float
    targets: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRA rank must be a positive integer, got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise ValueError(f"LoRA alpha must be a positive number, got {self.alpha!r}")
        object.__setattr__(self, "targets", parse_targets(self.targets))

    @property
    def scale(self) -> float:
        """s = α / r: the update's scale, so that changing r does not change the learning rate's effect much."""
        return self.alpha / self.rank

    def layers(self, cfg: GPTConfig) -> list[str]:
        """Dotted names of the adapted layers of ``cfg``, e.g. ``h.0.attn.c_attn``; ValueError if one is absent."""
        if "mlp.c_gate" in self.targets and cfg.mlp != "swiglu":
            raise ValueError(f"LoRA target c_gate exists only with mlp='swiglu' (this model has mlp={cfg.mlp!r})")
        return [f"h.{i}.{layer}" for i in range(cfg.n_layer) for layer in self.targets]


def adapter_shapes(cfg: GPTConfig, spec: LoraSpec) -> dict[str, tuple[int, int]]:
    """Dotted name → shape of every adapter tensor: ``h.0.attn.c_attn.A`` (in, r), ``…B`` (r, out)."""
    weights = param_shapes(cfg)
    shapes = {}
    for layer in spec.layers(cfg):
        d_in, d_out = weights[f"{layer}.weight"]
        shapes[f"{layer}.A"], shapes[f"{layer}.B"] = (d_in, spec.rank), (spec.rank, d_out)
    return shapes


def init_adapters(cfg: GPTConfig, spec: LoraSpec, seed: int = 0, dtype: np.dtype | type = np.float32) -> Params:
    """Fresh adapters: A ~ N(0, 1/in), B = 0 (so W' = W at the start), nested like the params.

    The draws come from a stream of their own (seeded by (seed, 0x10A)), not the one ``init_params(seed)`` uses.
    """
    rng = np.random.default_rng([seed, 0x10A])
    flat = {}
    for name, shape in adapter_shapes(cfg, spec).items():
        if name.endswith(".A"):
            flat[name] = (rng.standard_normal(shape) / math.sqrt(shape[0])).astype(dtype)
        else:
            flat[name] = np.zeros(shape, dtype)
    return unflatten_params(flat)


def validate_adapters(adapters: Params, cfg: GPTConfig, spec: LoraSpec) -> None:
    """ValueError naming the first missing, unexpected or misshaped adapter tensor."""
    if not isinstance(adapters, dict):
        raise ValueError(f"adapters must be a nested dict like the params, got {type(adapters).__name__}")
    flat, expected = flatten_params(adapters), adapter_shapes(cfg, spec)
    for name, shape in expected.items():
        if name not in flat:
            raise ValueError(f"adapter {name!r} is missing (expected shape {shape} for rank {spec.rank})")
        if tuple(np.shape(flat[name])) != shape:
            raise ValueError(f"adapter {name!r} has shape {tuple(np.shape(flat[name]))}, expected {shape}")
    extra = [name for name in flat if name not in expected]
    if extra:
        raise ValueError(f"unexpected adapter {extra[0]!r} (targets are {', '.join(spec.targets)})")


def adapted_layers(adapters: Params) -> list[str]:
    """The dotted layer names that ``adapters`` adapts (``h.0.attn.c_attn``, …), in their order."""
    return [name[: -len(".A")] for name in flatten_params(adapters) if name.endswith(".A")]


def spec_from_train(train: dict) -> LoraSpec | None:
    """The ``LoraSpec`` recorded in a run's train settings (config.json or a checkpoint's meta), None if off."""
    rank = int(train.get("lora_rank", 0))  # runs from before LoRA have no such fields: off
    if rank == 0:
        return None
    return LoraSpec(rank, float(train["lora_alpha"]), parse_targets(train["lora_targets"] or DEFAULT_TARGETS))


def join(params: Params, adapters: Params | None) -> Params:
    """One tree holding both, A and B beside each adapted layer's weight: what a LoRA run's checkpoint stores."""
    return params if adapters is None else unflatten_params({**flatten_params(params), **flatten_params(adapters)})


def split(tree: Params) -> tuple[Params, Params | None]:
    """Inverse of ``join``: (base params, adapters or None when the tree holds none)."""
    flat = flatten_params(tree)
    lora = {k: v for k, v in flat.items() if k.endswith((".A", ".B"))}
    base = unflatten_params({k: v for k, v in flat.items() if k not in lora})
    return base, (unflatten_params(lora) if lora else None)

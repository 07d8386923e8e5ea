"""Model configuration: one small frozen dataclass, named presets, validation at the boundary."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GPTConfig:
    """Shapes of a GPT-2 style decoder-only Transformer.

    vocab_size: number of token ids V; block_size: longest context T_max;
    n_layer: Transformer blocks L; n_head: attention heads H; n_embd: width C
    (each head has C / H dimensions); bias: biases in Linear and LayerNorm;
    dropout: rate used in training mode; layer_norm_eps: ε in LayerNorm.
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    bias: bool = True
    dropout: float = 0.0
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"GPTConfig.{name} must be an int, got {value!r} ({type(value).__name__})")
            if value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                f"choose n_embd as a multiple of n_head "
                f"(e.g. n_embd={self.n_head * max(1, self.n_embd // self.n_head)})"
            )
        if not isinstance(self.bias, bool):
            raise ValueError(f"GPTConfig.bias must be True or False, got {self.bias!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not (isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0):
            raise ValueError(f"GPTConfig.layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")

    @property
    def head_size(self) -> int:
        """d_k = C / H, the width of one attention head."""
        return self.n_embd // self.n_head

    def replace(self, **changes: Any) -> GPTConfig:
        """A copy with some fields changed (validated again)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}; valid fields: {field_names()}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GPTConfig:
        unknown = sorted(set(d) - set(field_names()))
        if unknown:
            raise ValueError(f"unknown GPTConfig field(s) {unknown}; valid fields: {field_names()}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GPTConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """A named preset (see ``PRESETS``), optionally with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]

    def num_params(self, *, include_embeddings: bool = True) -> int:
        """Parameter count N (the lm head is tied to wte, so it adds nothing)."""
        C, L, V, T = self.n_embd, self.n_layer, self.vocab_size, self.block_size
        b = 1 if self.bias else 0
        ln = C + b * C
        per_block = 2 * ln + (C * 3 * C + b * 3 * C) + (C * C + b * C) + (C * 4 * C + b * 4 * C) + (4 * C * C + b * C)
        n = L * per_block + ln
        if include_embeddings:
            n += V * C + T * C
        return n


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(GPTConfig)]


# One line per field: the single source of ``minigpt train --help`` for the model's options.
FIELD_DOCS: dict[str, str] = {
    "vocab_size": "number of token ids V (taken from the data's meta.json; leave it unset)",
    "block_size": "longest context T the model attends over",
    "n_layer": "number of Transformer blocks L",
    "n_head": "attention heads H per block (n_embd must be a multiple of it)",
    "n_embd": "width C of the residual stream; each head has C / H dimensions",
    "bias": "biases in the Linear and LayerNorm layers",
    "dropout": "dropout rate in training, in [0, 1)",
    "layer_norm_eps": "epsilon added to the variance in LayerNorm",
}


PRESETS: dict[str, GPTConfig] = {
    # For tests: small enough that float64 NumPy is instant.
    "tiny": GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32),
    # The README demo: char-level review model trained in minutes on 2 CPU cores.
    "baby": GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
    # nanoGPT's shakespeare-char shape.
    "small": GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384),
    # GPT-2 124M.
    "gpt2": GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
}

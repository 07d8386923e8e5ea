"""Model configuration: one small frozen dataclass, named presets, validation at the boundary."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any


def described(doc: str, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose one line of documentation is its ``doc`` metadata (``GPTConfig``, ``TrainConfig``):
    the line ``minigpt train --help`` shows, so that the field and its description are written in one place."""
    return dataclasses.field(default=default, metadata={"doc": doc})


def field_docs(cls: type) -> dict[str, str]:
    """{field name: its ``doc``} of a dataclass whose fields are ``described``."""
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class GPTConfig:
    """Shapes of a GPT-2 style decoder-only Transformer.

    vocab_size: number of token ids V; block_size: longest context T_max;
    n_layer: Transformer blocks L; n_head: attention heads H; n_embd: width C
    (each head has C / H dimensions); bias: biases in Linear and LayerNorm;
    dropout: rate used in training mode; layer_norm_eps: ε in LayerNorm.

    The Llama family's options (all default to GPT-2): pos, rope_theta, norm, mlp, mlp_hidden,
    n_kv_head, tie_embeddings, qkv_bias — each described by its field's ``doc`` (``FIELD_DOCS``, the
    one source of the ``minigpt train --help`` lines); ``GPTConfig.preset("llama-baby")``.
    """

    vocab_size: int = described("number of token ids V (taken from the data's meta.json; leave it unset)")
    block_size: int = described("longest context T the model attends over")
    n_layer: int = described("number of Transformer blocks L")
    n_head: int = described("attention heads H per block (n_embd must be a multiple of it)")
    n_embd: int = described("width C of the residual stream; each head has C / H dimensions")
    bias: bool = described("biases in the Linear and LayerNorm layers", True)
    dropout: float = described("dropout rate in training, in [0, 1)", 0.0)
    layer_norm_eps: float = described("epsilon added to the variance in LayerNorm", 1e-5)
    pos: str = described('"learned": wpe added to wte (GPT-2); "rope": rotary q/k positions, no wpe (Llama)', "learned")
    rope_theta: float = described("RoPE frequency base θ: pair i turns by position · θ^(−2i/d_k)", 10000.0)
    norm: str = described('"layernorm" (x − μ)/σ·γ + β, or "rmsnorm" x/rms(x)·γ (ε is layer_norm_eps)', "layernorm")
    mlp: str = described('"gelu": GELU(x W_fc) W_proj; "swiglu": (SiLU(x W_gate) ⊙ x W_fc) W_proj', "gelu")
    mlp_hidden: int | None = described("the MLP's hidden width F; None means 4·n_embd", None)
    n_kv_head: int | None = described("key/value heads H_kv (grouped-query attention); None means n_head", None)
    tie_embeddings: bool = described("lm head = wteᵀ; False stores its own lm_head.weight (C, V)", True)
    qkv_bias: bool | None = described("a bias on c_attn alone (Qwen2: True with bias=False); None follows bias", None)

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
        self._check_llama_options()

    def _check_llama_options(self) -> None:
        for name, choices in (
            ("pos", ("learned", "rope")),
            ("norm", ("layernorm", "rmsnorm")),
            ("mlp", ("gelu", "swiglu")),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"GPTConfig.{name} must be one of {list(choices)}, got {getattr(self, name)!r}")
        if isinstance(self.rope_theta, bool) or not isinstance(self.rope_theta, (int, float)) or self.rope_theta <= 1:
            raise ValueError(f"GPTConfig.rope_theta must be a number > 1 (Llama uses 10000.0), got {self.rope_theta!r}")
        for name in ("mlp_hidden", "n_kv_head"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"GPTConfig.{name} must be a positive integer or None, got {value!r}")
        for name in ("tie_embeddings",) + (("qkv_bias",) if self.qkv_bias is not None else ()):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"GPTConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if self.n_head % self.kv_heads != 0:
            divisors = [d for d in range(1, self.n_head + 1) if self.n_head % d == 0]
            raise ValueError(
                f"GPTConfig.n_head={self.n_head} is not divisible by n_kv_head={self.n_kv_head}; each key/value "
                f"head serves n_head // n_kv_head query heads, so choose n_kv_head from {divisors}"
            )
        if self.pos == "rope" and self.head_size % 2 != 0:
            raise ValueError(
                f"GPTConfig.pos='rope' rotates pairs of channels, but the head size n_embd / n_head = "
                f"{self.head_size} is odd; choose n_embd as a multiple of 2·n_head "
                f"(e.g. n_embd={2 * self.n_head * max(1, self.head_size // 2)})"
            )

    @property
    def head_size(self) -> int:
        """d_k = C / H, the width of one attention head."""
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """H_kv: the number of key/value heads (n_kv_head, or n_head when unset)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def mlp_width(self) -> int:
        """F: the MLP's hidden width (mlp_hidden, or 4·n_embd when unset)."""
        return 4 * self.n_embd if self.mlp_hidden is None else self.mlp_hidden

    @property
    def attn_bias(self) -> bool:
        """Whether c_attn has a bias (qkv_bias, or bias when unset)."""
        return self.bias if self.qkv_bias is None else self.qkv_bias

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
        """Parameter count N (a tied lm head adds nothing; an untied one adds C·V, counted as an embedding)."""
        C, L, V, T, F = self.n_embd, self.n_layer, self.vocab_size, self.block_size, self.mlp_width
        b = 1 if self.bias else 0
        qkv = (self.n_head + 2 * self.kv_heads) * self.head_size
        ln = C + b * C
        attn = C * qkv + (qkv if self.attn_bias else 0) + C * C + b * C
        n_in = 2 if self.mlp == "swiglu" else 1  # SwiGLU has a gate beside c_fc
        mlp = n_in * (C * F + b * F) + F * C + b * C
        n = L * (2 * ln + attn + mlp) + ln
        if include_embeddings:
            n += V * C + (T * C if self.pos == "learned" else 0) + (0 if self.tie_embeddings else C * V)
        return n


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(GPTConfig)]


# One line per field, from each field's ``doc``: the source of ``minigpt train --help`` for the model's options.
FIELD_DOCS: dict[str, str] = field_docs(GPTConfig)


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
# The Llama recipe on the same shapes: RoPE, RMSNorm, SwiGLU, grouped-query attention, no biases, untied head.
LLAMA = dict(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_embeddings=False)
PRESETS |= {
    # For tests: tiny's shape with 4 query heads sharing 2 key/value heads.
    "llama-tiny": GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=4, n_embd=32, n_kv_head=2, **LLAMA),
    # baby's shape and parameter count (within 0.2%): F = 392 keeps SwiGLU's three matrices near GELU's two, and
    # the head stays tied (as in Llama 3.2 1B and the small Qwen2 models), so a large vocabulary costs both alike.
    "llama-baby": GPTConfig(
        vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, n_kv_head=2, mlp_hidden=392, **LLAMA
    ).replace(tie_embeddings=True),
}

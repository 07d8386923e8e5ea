"""Hugging Face transformers seen through the same names, and ``minigpt verify --against DIR``.

``transformers_capture(model, idx, cfg)`` records a transformers GPT-2, Llama or Qwen2 model's activations with
forward hooks on its own modules (the block, its norms, the attention and its projections, the MLP and its down
projection), under ``minigpt.interpret.capture``'s names: q and k are taken after RoPE by applying the model's
own ``apply_rotary_pos_emb`` to its projections with the cos/sin the attention receives. ``verify_against(DIR)``
runs the reference on the directory (``minigpt.hub.load_pretrained``) and transformers on the same directory, both
in float64, and compares them layer by layer (``compare_layers``): the first activation that differs names the
block and sublayer where the two implementations part.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.hub import load_pretrained
from minigpt.interpret.capture import activation_names, capture
from minigpt.interpret.compare import LayerReport, compare_layers

MISSING = (
    "minigpt verify --against needs transformers and torch, which are not installed; "
    "install them with: pip install transformers torch"
)
# Modules of one block, by architecture: (norm 1, attention, its output projection, norm 2, MLP, its down projection)
GPT2_PARTS = ("ln_1", "attn", "c_proj", "ln_2", "mlp", "c_proj")
LLAMA_PARTS = ("input_layernorm", "self_attn", "o_proj", "post_attention_layernorm", "mlp", "down_proj")


class TransformersMissing(ImportError):
    """transformers or torch is not installed."""


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, tuple) else output


def transformers_capture(model: Any, idx: Any, cfg: GPTConfig) -> dict[str, np.ndarray]:
    """The activations of a transformers causal LM (GPT-2, Llama or Qwen2 layout) on ``idx`` (B, T), as NumPy, named
    and ordered like ``capture``; attention weights need the eager attention (``attn_implementation="eager"``)."""
    import torch  # torch: only where transformers runs

    gpt2 = hasattr(model, "transformer")
    body = model.transformer if gpt2 else model.model
    layers, final = (body.h, body.ln_f) if gpt2 else (body.layers, body.norm)
    acts: dict[str, Any] = {}
    rope: dict[int, tuple] = {}
    hooks = []

    def heads(t):  # (B, T, n·d_k) → (B, n, T, d_k)
        B, T, _ = t.shape
        return t.reshape(B, T, -1, cfg.head_size).transpose(1, 2)

    def out(name, fn=lambda t: t):
        return lambda module, args, output: acts.__setitem__(name, fn(_first(output)))

    def inp(name, fn=lambda t: t):
        return lambda module, args, kwargs: acts.__setitem__(name, fn(args[0] if args else kwargs["hidden_states"]))

    def split_qkv(i):
        def hook(module, args, output):
            q, k, v = output.split(cfg.n_embd, dim=-1)
            acts.update({f"h.{i}.attn.q": heads(q), f"h.{i}.attn.k": heads(k), f"h.{i}.attn.v": heads(v)})

        return hook

    def attention(i):
        def hook(module, args, output):
            acts[f"h.{i}.attn.out"], acts[f"h.{i}.attn.weights"] = output[0], output[1]

        return hook

    def position_embeddings(i):
        return lambda module, args, kwargs: rope.__setitem__(i, kwargs.get("position_embeddings"))

    names = GPT2_PARTS if gpt2 else LLAMA_PARTS
    for i, layer in enumerate(layers):
        ln_1, attn, o_proj, ln_2, mlp, down = names
        a, m = getattr(layer, attn), getattr(layer, mlp)
        h = f"h.{i}."
        hooks += [
            layer.register_forward_pre_hook(inp(h + "resid_pre"), with_kwargs=True),
            layer.register_forward_hook(out(h + "resid_post")),
            getattr(layer, ln_1).register_forward_hook(out(h + "ln_1.out")),
            a.register_forward_hook(attention(i)),
            getattr(a, o_proj).register_forward_pre_hook(inp(h + "attn.z", heads), with_kwargs=True),
            getattr(layer, ln_2).register_forward_pre_hook(inp(h + "resid_mid"), with_kwargs=True),
            getattr(layer, ln_2).register_forward_hook(out(h + "ln_2.out")),
            m.register_forward_hook(out(h + "mlp.out")),
            getattr(m, down).register_forward_pre_hook(inp(h + "mlp.act"), with_kwargs=True),
        ]
        if gpt2:
            hooks.append(a.c_attn.register_forward_hook(split_qkv(i)))
        else:
            hooks.append(a.register_forward_pre_hook(position_embeddings(i), with_kwargs=True))
            hooks += [getattr(a, f"{c}_proj").register_forward_hook(out(h + f"attn.{c}", heads)) for c in "qkv"]
    hooks.append(final.register_forward_hook(out("ln_f.out")))
    try:
        with torch.no_grad():
            acts["logits"] = model(torch.as_tensor(np.asarray(idx), dtype=torch.long)).logits
            if not gpt2:  # the attention rotates q and k after projecting them, with the model's own function
                apply_rope = sys.modules[type(a).__module__].apply_rotary_pos_emb
                for i, (cos, sin) in rope.items():
                    q, k = acts[f"h.{i}.attn.q"], acts[f"h.{i}.attn.k"]
                    acts[f"h.{i}.attn.q"], acts[f"h.{i}.attn.k"] = apply_rope(q, k, cos, sin)
    finally:
        for hook in hooks:
            hook.remove()
    return {n: acts[n].detach().to(torch.float64).numpy() for n in activation_names(cfg) if acts.get(n) is not None}


def require_transformers() -> Any:
    """The transformers module, or ``TransformersMissing`` with the line that says how to install it."""
    try:
        import torch  # noqa: F401  (torch, transformers: optional, imported only to compare with them)
        import transformers
    except ImportError as e:
        raise TransformersMissing(MISSING) from e
    return transformers


def load_transformers(path: str | Path) -> Any:
    """The transformers model of a Hugging Face directory, float64, eager attention (which returns the weights)."""
    transformers = require_transformers()
    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path), attn_implementation="eager")
    return model.double().eval()


def verify_against(
    path: str | Path, *, seed: int = 0, length: int = 8, rtol: float = 1e-5, atol: float = 1e-8
) -> tuple[LayerReport, GPTConfig]:
    """The reference on the Hugging Face directory ``path`` against transformers on it, layer by layer, in float64
    on a random batch of 2 × ``length`` token ids; returns (report, config).

    The default tolerance is float32's, not float64's: transformers' Llama and Qwen2 take their RMSNorm and their
    attention softmax in float32 even in a float64 model, so they agree with the reference to about 1e-7 of each
    activation's scale (GPT-2, all float64, to about 1e-15).
    """
    require_transformers()
    cfg, params = load_pretrained(path, dtype=np.float64)  # minigpt's own checks name a bad directory's problem
    model = load_transformers(path)
    idx = np.random.default_rng(seed).integers(0, cfg.vocab_size, (2, min(length, cfg.block_size)))
    return compare_layers(capture(params, idx, cfg), transformers_capture(model, idx, cfg), rtol=rtol, atol=atol), cfg


def main_against(path: str | Path, *, seed: int = 0, as_json: bool = False) -> int:
    """``minigpt verify --against DIR``: print the layer-by-layer table (or JSON); exit 1 on a divergence, 2 when
    transformers is missing or the directory cannot be read."""
    try:
        report, cfg = verify_against(path, seed=seed)
    except TransformersMissing as e:
        print(f"minigpt verify: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"minigpt verify: error: {e}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps({"against": str(path), "seed": seed, "passed": report.passed, **report.to_dict()}, indent=1))
    else:
        print(f"minigpt verify --against {path}: the reference vs transformers, float64, seed {seed}\n")
        print(report.table())
    return 0 if report.passed else 1

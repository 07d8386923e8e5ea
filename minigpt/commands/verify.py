"""``minigpt verify``: a numerical verification report — the NumPy reference against JAX, component by component.

For a few random configs and for float32 and float64, every check in ``CHECKS`` compares two independent
computations and reports max |a − b| and max |a − b| / (|b| + tiny) against a tolerance
(pass ⇔ |a − b| ≤ atol + rtol·|b| everywhere, as ``np.allclose``):

- softmax, layer_norm, gelu, multi-head attention, mlp, block, logits, attention weights, loss:
  reference (NumPy) vs the Flax model (JAX, forward and loss under ``jax.jit``);
- scaled dot-product attention: reference vs ``jax.nn.dot_product_attention`` (a third implementation; float32
  only, since it takes its softmax in float32 whatever the input dtype);
- loss vs the explicit causal log-likelihood −(1/N) Σ_t log P(x_{t+1} | x_≤t), each P from a separate forward
  pass over the prefix x_≤t alone (so the causal mask is checked, not assumed);
- d loss / dθ: ``jax.grad`` vs central finite differences of the reference loss (float64 only);
- d loss / dθ by hand (``reference.loss_and_grads``, NumPy backprop) vs ``jax.grad`` of the Flax model, every entry;
- KV-cache decoding (prefill, then one token per step) vs the full forward, NumPy and JAX caches.

Adding a check: write ``def check_x(case: Case) -> Iterable[Row]`` and append it to ``CHECKS``; it receives
the config, dtype, reference params, Flax model, a token batch and targets, already in the right x64 mode.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from minigpt import reference as ref
from minigpt.config import GPTConfig
from minigpt.params import Params, flatten_params, map_params, unflatten_params
from minigpt.reference import functional as F
from minigpt.reference import init_params
from minigpt.reference import model as M
from minigpt.reference.functional import log_softmax
from minigpt.reference.kv_cache import ReferenceKVCache, forward_cached_numpy

# (rtol, atol) per dtype: float32 sums in a different order in XLA; float64 should agree to rounding.
TOLERANCES = {"float32": (1e-4, 1e-5), "float64": (1e-9, 1e-11)}


@dataclass
class Row:
    check: str
    dtype: str
    config: str
    max_abs: float
    max_rel: float  # max |a − b| ÷ max |b| (normwise relative error)
    rtol: float
    atol: float
    passed: bool


@dataclass
class Case:
    """Everything a check needs; built once per (config, dtype) inside the matching JAX x64 mode."""

    cfg: GPTConfig
    dtype: np.dtype
    params: Params  # reference layout, NumPy, in ``dtype``
    model: object  # minigpt.model.GPT holding the same params
    idx: np.ndarray  # (B, T) int32
    targets: np.ndarray  # (B, T) int32, idx shifted by one
    rng: np.random.Generator

    def row(self, check: str, got, want, tol: tuple[float, float] | None = None) -> Row:
        """Compare ``got`` (the implementation under test) with ``want`` (the one taken as truth)."""
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            raise ValueError(f"{check}: shapes differ, {got.shape} vs {want.shape}")
        rtol, atol = tol or TOLERANCES[self.dtype.name]
        err = np.abs(got - want)
        finite = bool(np.all(np.isfinite(got)) and np.all(np.isfinite(want)))
        return Row(
            check=check,
            dtype=self.dtype.name,
            config=describe(self.cfg),
            max_abs=float(np.max(err)) if finite else math.inf,
            # normwise: elementwise |a−b|/|b| explodes where b ≈ 0 and says nothing about the agreement
            max_rel=float(np.max(err) / (np.max(np.abs(want)) + 1e-300)) if finite else math.inf,
            rtol=rtol,
            atol=atol,
            passed=finite and bool(np.all(err <= atol + rtol * np.abs(want))),
        )


def describe(cfg: GPTConfig) -> str:
    return (
        f"L{cfg.n_layer} H{cfg.n_head} C{cfg.n_embd} V{cfg.vocab_size} T{cfg.block_size}{'' if cfg.bias else ' nobias'}"
    )


# -- checks ----------------------------------------------------------------------------------------


def check_components(case: Case) -> Iterable[Row]:
    """softmax, layer_norm, gelu, SDPA, MHA, MLP, block: reference vs JAX on the same random inputs."""
    import jax  # JAX: minigpt verify --help answers without it
    import jax.numpy as jnp  # JAX: as above

    cfg, dt, rng = case.cfg, case.dtype, case.rng
    B, T, C, H = case.idx.shape[0], case.idx.shape[1], cfg.n_embd, cfg.n_head
    x = (rng.standard_normal((B, T, C)) * 2).astype(dt)  # (B, T, C)
    s = (rng.standard_normal((B, T, cfg.vocab_size)) * 5).astype(dt)
    yield case.row("softmax", jax.nn.softmax(jnp.asarray(s), axis=-1), F.softmax(s))
    p0, m0 = case.params["h"][0], case.model.h[0]
    ln = p0["ln_1"]
    yield case.row(
        "layer_norm", m0.ln_1(jnp.asarray(x)), F.layer_norm(x, ln["weight"], ln.get("bias"), cfg.layer_norm_eps)
    )
    yield case.row("gelu", jax.nn.gelu(jnp.asarray(x), approximate=True), F.gelu(x))
    if dt == np.float32:  # jax.nn.dot_product_attention takes its softmax in float32 even for float64 inputs
        q, k, v = (rng.standard_normal((B, H, T, cfg.head_size)).astype(dt) for _ in range(3))  # (B, H, T, d_k)
        want = F.scaled_dot_product_attention(q, k, v, F.causal_mask(T, dt))
        got = jax.nn.dot_product_attention(*(jnp.asarray(t).transpose(0, 2, 1, 3) for t in (q, k, v)), is_causal=True)
        yield case.row("attention (vs jax.nn)", np.asarray(got).transpose(0, 2, 1, 3), want)
    yield case.row("multi_head_attention", m0.attn(jnp.asarray(x)), F.multi_head_attention(x, p0["attn"], H))
    yield case.row("mlp", m0.mlp(jnp.asarray(x)), F.mlp(x, p0["mlp"]))
    yield case.row("block", m0(jnp.asarray(x)), M.block(x, p0, cfg))


def check_model(case: Case) -> Iterable[Row]:
    """Logits, attention weights and loss of the whole model: reference vs jitted JAX."""
    from flax import nnx  # Flax: as above

    logits = nnx.jit(lambda m, i: m(i))(case.model, case.idx)
    yield case.row("logits (jit)", logits, ref.forward(case.params, case.idx, case.cfg))
    yield case.row(
        "attention weights",
        case.model.attention_weights(case.idx),
        ref.attention_weights(case.params, case.idx, case.cfg),
    )
    loss = nnx.jit(lambda m, i, t: m.loss(i, t))(case.model, case.idx, case.targets)
    yield case.row("loss (jit)", loss, ref.loss(case.params, case.idx, case.targets, case.cfg))


def check_log_likelihood(case: Case) -> Iterable[Row]:
    """The batched, masked loss equals −(1/N) Σ log P(x_{t+1} | x_≤t) with each P from the prefix alone."""

    B, T = case.idx.shape
    total = 0.0
    for b in range(B):
        for t in range(T):
            prefix = case.idx[b : b + 1, : t + 1]  # (1, t+1): the model never sees what comes after
            logp = log_softmax(ref.forward(case.params, prefix, case.cfg)[0, -1])  # (V,)
            total -= float(logp[case.targets[b, t]])
    yield case.row("loss = causal log-lik.", ref.loss(case.params, case.idx, case.targets, case.cfg), total / (B * T))


def _jax_grads(case: Case) -> dict[str, np.ndarray]:
    """jax.grad of the Flax model's loss, flattened to the dotted parameter names."""
    from flax import nnx  # Flax: as above

    grads = nnx.jit(nnx.grad(lambda m, i, t: m.loss(i, t)))(case.model, case.idx, case.targets)
    return {".".join(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(grads)}


def check_grad_finite_differences(case: Case, n_coords: int = 12, eps: float = 1e-5) -> Iterable[Row]:
    """jax.grad of the loss vs central differences (L(θ + εe_i) − L(θ − εe_i)) / 2ε of the reference loss, at
    ``n_coords`` random coordinates. float64 only: in float32 the differences are mostly rounding noise."""
    if case.dtype != np.float64:
        return

    flat_g = _jax_grads(case)
    flat = flatten_params(case.params)
    names = sorted(flat)
    got, want = [], []
    for _ in range(n_coords):
        name = names[case.rng.integers(len(names))]
        i = tuple(int(case.rng.integers(n)) for n in flat[name].shape)
        vals = []
        for sign in (1.0, -1.0):
            bumped = dict(flat)
            bumped[name] = flat[name].copy()
            bumped[name][i] += sign * eps
            vals.append(float(ref.loss(unflatten_params(bumped), case.idx, case.targets, case.cfg)))
        want.append((vals[0] - vals[1]) / (2 * eps))
        got.append(flat_g[name][i])
    # central differences are exact to O(ε²) ≈ 1e-10 plus rounding ≈ 1e-16/ε ≈ 1e-11
    yield case.row("grad: jax.grad vs FD", got, want, tol=(1e-5, 1e-8))


def check_hand_written_grads(case: Case) -> Iterable[Row]:
    """∂L/∂θ by hand (``reference.loss_and_grads``, NumPy) vs ``jax.grad`` of the Flax model, every entry of every
    tensor, in float32 and float64; plus the loss the backward pass returns vs ``reference.loss``."""

    loss, grads = ref.loss_and_grads(case.params, case.idx, case.targets, case.cfg)
    by_hand = flatten_params(grads)
    auto = _jax_grads(case)
    names = sorted(by_hand)
    if sorted(auto) != names:
        raise ValueError(f"gradient names differ: by hand {names}, jax.grad {sorted(auto)}")
    yield case.row(
        "grad: hand vs jax.grad",
        np.concatenate([by_hand[n].ravel() for n in names]),
        np.concatenate([auto[n].ravel() for n in names]),
    )
    yield case.row("loss of loss_and_grads", loss, ref.loss(case.params, case.idx, case.targets, case.cfg))


def check_kv_cache(case: Case) -> Iterable[Row]:
    """Decoding with a KV cache — a prompt prefilled, then one token at a time — gives the logits of the full
    (uncached) reference forward at every position; for the NumPy cache and for the jitted JAX cache."""
    import jax  # JAX: minigpt verify --help answers without it
    import jax.numpy as jnp  # JAX: as above

    from minigpt.model import KVCache, apply  # JAX: as above

    B, T = case.idx.shape
    P = max(1, T // 2)  # prompt length: prefill P tokens at once, then T − P single-token steps
    want = ref.forward(case.params, case.idx, case.cfg)  # (B, T, V)
    start = np.zeros(B, dtype=np.int32)

    cache = ReferenceKVCache(case.cfg, start)
    pieces = [forward_cached_numpy(case.params, case.cfg, case.idx[:, :P], cache)]
    pieces += [forward_cached_numpy(case.params, case.cfg, case.idx[:, t : t + 1], cache) for t in range(P, T)]
    yield case.row("kv cache (numpy)", np.concatenate(pieces, axis=1), want)

    params = map_params(jnp.asarray, case.params)
    step = jax.jit(lambda p, i, c: apply(p, i, case.cfg, cache=c))  # the JAX model itself, on its cache
    jcache = KVCache.init(case.cfg, B, T, case.dtype, start)
    logits, jcache = step(params, case.idx[:, :P], jcache)
    pieces = [np.asarray(logits)]
    for t in range(P, T):
        logits, jcache = step(params, case.idx[:, t : t + 1], jcache)
        pieces.append(np.asarray(logits))
    yield case.row("kv cache (jax)", np.concatenate(pieces, axis=1), want)


# The report's rows, in order; a new check is appended here.
CHECKS: list[Callable[[Case], Iterable[Row]]] = [
    check_components,
    check_model,
    check_log_likelihood,
    check_grad_finite_differences,
    check_hand_written_grads,
    check_kv_cache,
]


# -- driver ----------------------------------------------------------------------------------------


def random_config(rng: np.random.Generator) -> GPTConfig:
    n_head = int(rng.integers(1, 5))
    return GPTConfig(
        vocab_size=int(rng.integers(5, 65)),
        block_size=int(rng.integers(4, 13)),
        n_layer=int(rng.integers(1, 4)),
        n_head=n_head,
        n_embd=n_head * int(rng.integers(2, 9)),
        bias=bool(rng.integers(2)),
    )


def make_case(cfg: GPTConfig, dtype: type, seed: int) -> Case:
    """Random params (GPT-2 init plus noise, so biases and LayerNorm gains are not 0/1) and tokens."""
    from minigpt.model import GPT  # JAX: as above

    rng = np.random.default_rng(seed)
    params = map_params(
        lambda a: (a + 0.1 * rng.standard_normal(a.shape)).astype(dtype), init_params(cfg, seed=seed, dtype=dtype)
    )
    idx = rng.integers(0, cfg.vocab_size, size=(2, cfg.block_size + 1)).astype(np.int32)
    return Case(cfg, np.dtype(dtype), params, GPT.from_params(params, cfg), idx[:, :-1], idx[:, 1:], rng)


def run(n_configs: int = 3, seed: int = 0, checks: list[Callable[[Case], Iterable[Row]]] | None = None) -> list[Row]:
    """All rows for ``n_configs`` random configs × {float32, float64}."""
    import jax  # JAX: minigpt verify --help answers without it

    if n_configs < 1:
        raise ValueError(f"n_configs must be at least 1, got {n_configs}")
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_configs):
        cfg = random_config(rng)
        for dtype in (np.float32, np.float64):
            with jax.enable_x64(dtype == np.float64):
                case = make_case(cfg, dtype, seed * 1000 + c)
                for check in CHECKS if checks is None else checks:
                    rows.extend(check(case))
    return rows


def format_table(rows: list[Row]) -> str:
    head = f"{'check':<24} {'dtype':<8} {'config':<26} {'max abs':>9} {'rel/max':>9} {'rtol':>7} {'atol':>7}  status"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.check:<24} {r.dtype:<8} {r.config:<26} {r.max_abs:9.2e} {r.max_rel:9.2e} {r.rtol:7.0e} {r.atol:7.0e}"
            f"  {'ok' if r.passed else 'FAIL'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minigpt verify", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=3, help="number of random configs (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print a JSON report instead of the table")
    parser.add_argument(
        "--against",
        metavar="DIR",
        help="instead: the reference on a Hugging Face GPT-2/Llama/Qwen2 directory against transformers on it, "
        "layer by layer, naming the first activation that differs (minigpt.interpret.hf)",
    )
    args = parser.parse_args(argv)
    if args.configs < 1:
        parser.error(f"--configs must be at least 1, got {args.configs}")
    if args.against is not None:
        from minigpt.interpret.hf import main_against

        return main_against(args.against, seed=args.seed, as_json=args.json)

    import jax  # JAX: minigpt verify --help answers without it

    rows = run(args.configs, args.seed)
    failed = [r for r in rows if not r.passed]
    backend = f"{jax.default_backend()} ({', '.join(str(d) for d in jax.devices())})"
    if args.json:
        report = {"backend": backend, "seed": args.seed, "passed": not failed, "rows": [asdict(r) for r in rows]}
        # inf is not JSON: an infinite error (NaN/inf in an output) is written as null
        text = json.dumps(report, indent=1, default=str).replace("Infinity", "null")
        print(text)
    else:
        print(f"minigpt verify — backend {backend}, seed {args.seed}\n")
        print(format_table(rows))
        print(f"\n{len(rows) - len(failed)}/{len(rows)} checks passed" + (f"; {len(failed)} FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

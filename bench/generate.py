"""Greedy decoding speed: tokens/s at batch 1, a 16-token prompt, 200 new tokens, random weights.

For preset ``small`` (vocab 65) and GPT-2 124M shapes: minigpt JAX (one jitted ``lax.while_loop``)
and the NumPy reference, each with and without the KV cache, and Hugging Face
``GPT2LMHeadModel.generate`` (PyTorch, CPU, KV cache on) built from a random ``GPT2Config``
of the same shapes, all in one run so the ratios compare like with like on this machine.

    PYTHONPATH=. python bench/generate.py                # both shapes
    PYTHONPATH=. python bench/generate.py --shapes small

The uncached runs recompute the whole sequence each step (O(T²)); the NumPy one (both shapes) and the
JAX one at GPT-2 shapes generate only ``--slow-tokens`` tokens (default 20), which flatters them
(their later steps are the costly ones).

On a shared, oversubscribed machine multi-threaded OpenBLAS can make batch-1 matrix-vector products
~100x slower (threads spin against other processes); run with ``OPENBLAS_NUM_THREADS=1`` (and
``--torch-threads 1``) to measure the code rather than the contention.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from minigpt.training.hostmem import configure_cpu


def timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (after the caller's warm-up)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_shape(name: str, prompt_len: int, new_tokens: int, slow_tokens: int, repeats: int) -> dict[str, float]:
    import jax
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from minigpt import GPTConfig
    from minigpt import reference as ref
    from minigpt.generate import generate

    cfg = GPTConfig.preset(name)
    host = ref.init_params(cfg, seed=0, dtype=np.float32)
    prompt = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(1, prompt_len)).astype(np.int32)
    rates: dict[str, float] = {}

    on_device = jax.tree.map(jax.numpy.asarray, host)  # what a GPT model holds: no host copy per call

    def run(label: str, n: int, reps: int, **kw) -> None:
        params = on_device if kw["backend"] == "jax" else host
        out = generate(params, prompt, cfg, max_new_tokens=n, temperature=0, **kw)  # warm-up / compile
        assert len(out[0]) == n
        seconds = timed(lambda: generate(params, prompt, cfg, max_new_tokens=n, temperature=0, **kw), reps)
        rates[label] = n / seconds
        print(f"  {label:<22} {n / seconds:9.1f} tokens/s   ({n} tokens in {seconds:.3f} s)", flush=True)

    print(f"{name}: {cfg}  ({cfg.num_params():,} params), prompt {prompt_len}, greedy, batch 1", flush=True)
    run("jax cached", new_tokens, repeats, backend="jax")
    run("jax no cache", new_tokens if name != "gpt2" else slow_tokens, 1, backend="jax", use_cache=False)
    run("numpy cached", new_tokens, 1, backend="numpy")
    run("numpy no cache", slow_tokens, 1, backend="numpy", use_cache=False)

    torch.manual_seed(0)
    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    hf = GPT2LMHeadModel(hf_cfg).eval()
    ids = torch.tensor(prompt, dtype=torch.long)
    kw = dict(do_sample=False, use_cache=True, pad_token_id=0, eos_token_id=None, min_new_tokens=new_tokens)

    def hf_generate() -> None:
        with torch.no_grad():
            out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, **kw)
        assert out.shape[1] == prompt_len + new_tokens

    hf_generate()  # warm-up
    seconds = timed(hf_generate, repeats)
    rates["hf cached"] = new_tokens / seconds
    label = "HF generate cached"
    print(f"  {label:<22} {new_tokens / seconds:9.1f} tokens/s   ({new_tokens} tokens in {seconds:.3f} s)")
    print(
        f"  ratios: jax cached / HF = {rates['jax cached'] / rates['hf cached']:.2f}x, "
        f"jax cached / jax no cache = {rates['jax cached'] / rates['jax no cache']:.2f}x, "
        f"numpy cached / numpy no cache = {rates['numpy cached'] / rates['numpy no cache']:.2f}x, "
        f"jax cached / numpy cached = {rates['jax cached'] / rates['numpy cached']:.2f}x",
        flush=True,
    )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["small", "gpt2"], choices=["tiny", "baby", "small", "gpt2"])
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--slow-tokens", type=int, default=20, help="new tokens for the slow uncached runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads")
    args = parser.parse_args()
    configure_cpu()  # what the minigpt CLI does before JAX starts (minigpt.training.hostmem)
    import jax
    import torch

    torch.set_num_threads(args.torch_threads)
    print(
        f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} ({args.torch_threads} threads), "
        f"{os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    for name in args.shapes:
        bench_shape(name, args.prompt_len, args.new_tokens, args.slow_tokens, args.repeats)


if __name__ == "__main__":
    main()

"""Layout validation and bad input: clear errors in both implementations."""

import numpy as np
import pytest
from flax import nnx

from minigpt import GPT, GPTConfig, from_params, validate_params
from minigpt import reference as ref
from minigpt.params import unflatten_params, weight_decay_mask

CFG = GPTConfig.preset("tiny")
PARAMS = ref.init_params(CFG)
MODEL = GPT(CFG, rngs=nnx.Rngs(0))


def _forward_ref(idx):
    return ref.forward(PARAMS, idx, CFG)


def _forward_jax(idx):
    return MODEL(idx)


BOTH = pytest.mark.parametrize("forward", [_forward_ref, _forward_jax], ids=["reference", "jax"])


@BOTH
def test_token_out_of_range(forward):
    with pytest.raises(ValueError, match=f"token id 70000 is out of range for vocab_size {CFG.vocab_size}"):
        forward(np.array([[1, 70000]]))
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        forward(np.array([[-1, 2]]))


@BOTH
def test_sequence_longer_than_block_size(forward):
    with pytest.raises(ValueError, match=f"T={CFG.block_size + 1} exceeds block_size={CFG.block_size}"):
        forward(np.zeros((1, CFG.block_size + 1), np.int32))


@BOTH
def test_wrong_dtype_or_rank(forward):
    with pytest.raises(ValueError, match="integer token ids.*float"):
        forward(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match=r"rank 2 \(B, T\).*\[None, :\]"):
        forward(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="rank 2"):
        forward(np.zeros((1, 2, 3), np.int32))
    with pytest.raises(ValueError, match="at least 1"):
        forward(np.zeros((1, 0), np.int32))
    with pytest.raises(ValueError, match="integer array"):
        forward([[1, 2]])


def test_targets_checked_in_both():
    idx = np.zeros((2, 4), np.int32)
    for loss in (lambda t: ref.loss(PARAMS, idx, t, CFG), lambda t: MODEL.loss(idx, t)):
        with pytest.raises(ValueError, match=r"targets have shape \(2, 3\) but idx has shape \(2, 4\)"):
            loss(np.zeros((2, 3), np.int32))
        with pytest.raises(ValueError, match=f"target id {CFG.vocab_size} is out of range"):
            loss(np.full((2, 4), CFG.vocab_size))
        with pytest.raises(ValueError, match="every target equals ignore_index"):
            loss(np.full((2, 4), -1))


def test_validate_params_names_the_first_mismatch():
    p = ref.init_params(CFG)
    p["h"][1]["attn"]["c_attn"]["weight"] = np.zeros((CFG.n_embd, CFG.n_embd), np.float32)
    with pytest.raises(ValueError, match=r"'h.1.attn.c_attn.weight' has shape \(32, 32\), expected \(32, 96\)"):
        validate_params(p, CFG)
    with pytest.raises(ValueError, match="h.1.attn.c_attn.weight"):
        from_params(p, CFG)

    p = ref.init_params(CFG)
    del p["h"][0]["mlp"]["c_fc"]["bias"]
    with pytest.raises(ValueError, match="'h.0.mlp.c_fc.bias' is missing"):
        from_params(p, CFG)

    p = ref.init_params(CFG)
    p["h"][0]["attn"]["extra"] = {"weight": np.zeros(3)}
    with pytest.raises(ValueError, match="unexpected parameter 'h.0.attn.extra.weight'"):
        validate_params(p, CFG)

    p = ref.init_params(CFG)
    p["h"].append(p["h"][0])
    with pytest.raises(ValueError, match="unexpected parameter 'h.2"):
        validate_params(p, CFG)

    p = ref.init_params(CFG)
    p["ln_f"]["weight"] = p["ln_f"]["weight"].astype(np.int32)
    with pytest.raises(ValueError, match="'ln_f.weight' has dtype int32"):
        validate_params(p, CFG)


def test_mixed_dtypes_are_rejected_by_conversion():
    p = ref.init_params(CFG)
    p["wpe"]["weight"] = p["wpe"]["weight"].astype(np.float16)
    with pytest.raises(ValueError, match="mix dtypes"):
        from_params(p, CFG)


def test_bias_free_layout():
    cfg = CFG.replace(bias=False)
    p = ref.init_params(cfg)
    validate_params(p, cfg)
    with pytest.raises(ValueError, match="'h.0.ln_1.bias' is missing"):
        validate_params(p, CFG)
    with pytest.raises(ValueError, match="unexpected parameter 'h.0.ln_1.bias'"):
        validate_params(PARAMS, cfg)


def test_unflatten_rejects_gaps_in_block_numbers():
    with pytest.raises(ValueError, match="block names under 'h' must be 0..1"):
        unflatten_params({"h.0.ln_1.weight": 1, "h.2.ln_1.weight": 2})


def test_weight_decay_mask_decays_linear_matrices_only():
    from minigpt import flatten_params

    mask = flatten_params(weight_decay_mask(PARAMS))
    decayed = sorted(n for n, m in mask.items() if m)
    assert decayed == sorted(
        f"h.{i}.{m}.weight"
        for i in range(CFG.n_layer)
        for m in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    )

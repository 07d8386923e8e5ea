"""minigpt.hostmem: XLA:CPU's per-step buffers are reused instead of page-faulted in every step."""

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import json, resource, sys
import minigpt  # configures malloc before JAX starts its threads
import jax, jax.numpy as jnp, numpy as np
from minigpt.config import GPTConfig
from minigpt.hostmem import keep_freed_memory
from minigpt.train import StepSpec, TrainConfig, compiled_steps, dropout_key, init_params

cfg = GPTConfig.preset("baby", vocab_size=65)  # XLA's temporaries: ~45 MB per step, above glibc's mmap threshold
steps = compiled_steps(cfg, StepSpec.of(TrainConfig(batch_size=12, progress=False)))
params = jax.tree.map(jnp.asarray, init_params(cfg, 0))
opt_state = steps.tx.init(params)
xs = np.random.default_rng(0).integers(0, 65, size=(1, 12, 64)).astype(np.int32)
faults = []
for i in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    params, opt_state, out = steps.train_step(params, opt_state, xs, xs, dropout_key(0))
    float(out["loss"])
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
# the median step after warm-up: the heap may still grow once in a while, the typical step is what counts
print(json.dumps({"applied": keep_freed_memory(), "faults_per_step": sorted(faults[3:])[3]}))
"""


def probe(opt_out: bool) -> dict:
    env = {**os.environ, "MINIGPT_KEEP_FREED_MEMORY": "0" if opt_out else "1"}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_train_steps_reuse_host_memory_instead_of_page_faulting():
    tuned, default = probe(opt_out=False), probe(opt_out=True)
    assert tuned["applied"] and not default["applied"]
    # 45 MB of fresh pages is ~11 000 faults; reused memory needs (almost) none
    assert default["faults_per_step"] > 5000
    assert tuned["faults_per_step"] < 0.2 * default["faults_per_step"]

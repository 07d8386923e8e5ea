"""The NumPy half runs with NumPy alone: in a process where ``import jax`` fails, the reference's forward pass, loss,
hand-written backward, NumPy trainer and KV-cached greedy and beam decoding with banned phrases all work.

The subprocess installs an import hook that refuses jax, flax, optax and orbax, so any import of them anywhere
below ``minigpt.reference`` or ``minigpt.generate``'s NumPy path fails the test. A positive control shows the
hook really blocks: ``minigpt.model`` must fail to import there.
"""

import json
import subprocess
import sys

BLOCKED = r"""
import importlib.abc, json, sys

class NoJax(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"jax", "jaxlib", "flax", "optax", "orbax"}:
            raise ImportError(f"{name} is blocked in this test: the NumPy half must not need it")
        return None

sys.meta_path.insert(0, NoJax())

import numpy as np
from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.generate import BannedPhrases, beam_search, generate

cfg = GPTConfig(vocab_size=11, block_size=16, n_layer=2, n_head=2, n_embd=8)
params = ref.init_params(cfg, seed=0)
rng = np.random.default_rng(0)
idx = rng.integers(0, cfg.vocab_size, (2, 8))
logits = ref.forward(params, idx, cfg)
loss = ref.loss(params, idx[:, :-1], idx[:, 1:], cfg)
loss2, grads = ref.loss_and_grads(params, idx[:, :-1], idx[:, 1:], cfg)
_, losses = ref.train_numpy(rng.integers(0, cfg.vocab_size, 400), cfg, steps=3, batch_size=2, log=lambda s: None)

# greedy with the cache equals the argmax of the full forward pass, token by token
prompt = [1, 2, 3]
new = generate(params, [prompt], cfg, max_new_tokens=4, temperature=0.0, backend="numpy")[0]
seq = list(prompt)
for _ in range(4):
    seq.append(int(np.argmax(ref.forward(params, np.array([seq]), cfg)[0, -1])))
pieces = [bytes([97 + i]) for i in range(cfg.vocab_size)]  # token v is the letter chr(97 + v)
banned_letter = chr(97 + new[0])
bans = BannedPhrases([banned_letter], pieces)
banned = generate(params, [prompt], cfg, max_new_tokens=4, temperature=0.0, bans=bans, backend="numpy")[0]
beams = beam_search(params, prompt, cfg, num_beams=3, max_new_tokens=3, bans=bans, backend="numpy")
try:
    import minigpt.model  # noqa: F401
    control = "imported"
except ImportError:
    control = "blocked"
print(json.dumps({
    "logits": list(logits.shape), "loss": float(loss), "loss2": float(loss2), "grads": len(grads),
    "losses": [float(x) for x in losses], "new": new, "want": seq[len(prompt):],
    "banned": banned, "banned_id": new[0], "beams": [list(map(int, h.tokens)) for h in beams],
    "jax_loaded": "jax" in sys.modules, "control": control,
}))
"""


def test_reference_training_and_numpy_decoding_run_without_jax(tmp_path):
    out = subprocess.run([sys.executable, "-c", BLOCKED], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["control"] == "blocked"  # the hook really refuses JAX
    assert r["jax_loaded"] is False
    assert r["logits"] == [2, 8, 11]
    assert abs(r["loss"] - r["loss2"]) < 1e-5  # the hand-written backward's loss is the forward's
    assert r["grads"] > 0 and len(r["losses"]) == 3
    assert r["new"] == r["want"]  # cached greedy decoding equals argmax over full forward passes
    assert r["banned_id"] not in r["banned"]  # the ban is honoured
    assert r["beams"] and all(r["banned_id"] not in beam for beam in r["beams"])

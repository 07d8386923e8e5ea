"""minigpt — a from-scratch, educational GPT: a NumPy reference and a JAX/Flax NNX twin that agree.

The Flax names (``GPT``, ``from_params``, ``to_params``) load JAX on first use, so that the
NumPy reference, the tokenizers and ``minigpt prepare`` start without paying for it. Importing minigpt
(or any of its modules) changes no process state: the CPU memory and dispatch tuning that training wants
is the explicit call ``minigpt.training.hostmem.configure_cpu()``, made by the ``minigpt`` command line.

The package, following the data flow::

    config, params, validation, adapters, atomic   the shared contracts (GPTConfig, the parameter layout, …)
    data/        corpora → cleaned lines → token arrays on disk → batches
    tokenizers/  characters and byte-level BPE
    reference/   the NumPy textbook: forward, loss, hand-written backward, AdamW, trainer, KV cache
    model/       the Flax NNX twin (with its fast kernels and KV cache)
    training/    config, optimizer, the jitted step on a mesh, the loop, checkpoints, run directories
    generate/    decoding: greedy, sampling, beam search, banned phrases, streaming text
    hub/         Hugging Face GPT-2 / Llama / Qwen2 directories in and out
    apps/        the e-commerce applications (classifier, sentiment control, moderation)
    viz/         attention maps and loss curves
    commands/    one module per ``minigpt`` command
    testing/     strategies, lesson checkers, graded assignments and the grader

Modules that moved keep their old names (``minigpt.runs``, ``minigpt.hub_llama``, …): see ``moved/``.
"""

import importlib
import os
from typing import Any

from minigpt.config import PRESETS, GPTConfig
from minigpt.params import flatten_params, param_shapes, unflatten_params, validate_params

__version__ = "0.1.0"

# Old module names, e.g. minigpt.runs, resolve to their new homes (minigpt/moved/).
__path__.append(os.path.join(os.path.dirname(__file__), "moved"))

_LAZY = {
    "GPT": "minigpt.model",
    "from_params": "minigpt.model",
    "to_params": "minigpt.model",
    "Chat": "minigpt.generate",
}

__all__ = [
    "GPT",
    "Chat",
    "PRESETS",
    "GPTConfig",
    "flatten_params",
    "from_params",
    "param_shapes",
    "to_params",
    "unflatten_params",
    "validate_params",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "chat":  # minigpt.chat(RUN, ...): a Chat with a run's newest checkpoint
        from minigpt.generate.chat import Chat

        return Chat.from_run
    raise AttributeError(f"module 'minigpt' has no attribute {name!r}")

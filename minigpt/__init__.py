"""minigpt — a from-scratch, educational GPT: a NumPy reference and a JAX/Flax NNX twin that agree.

The Flax names (``GPT``, ``from_params``, ``to_params``) load JAX on first use, so that the
NumPy reference, the tokenizers and ``minigpt prepare`` start without paying for it. Importing minigpt
(or any of its modules) changes no process state: the CPU memory and dispatch tuning that training wants
is the explicit call ``minigpt.hostmem.configure_cpu()``, made by the ``minigpt`` command line.
"""

from typing import Any

from minigpt.config import PRESETS, GPTConfig
from minigpt.params import flatten_params, param_shapes, unflatten_params, validate_params

__version__ = "0.1.0"

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
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "chat":  # minigpt.chat(RUN, ...): a Chat with a run's newest checkpoint
        from minigpt.generate.chat import Chat

        return Chat.from_run
    raise AttributeError(f"module 'minigpt' has no attribute {name!r}")

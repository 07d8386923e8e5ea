"""The graded exercises that ship with minigpt, one module per lesson, and how to load any assignment.

Each ``notebooks/exercises/NN_topic.ipynb`` is graded by ``ASSIGNMENTS["NN_topic"]``; an instructor's own
assignment is a Python file or module holding an ``Assignment`` (``FILE.py:NAME`` or ``pkg.mod:NAME``;
``NAME`` defaults to ``ASSIGNMENT``).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from minigpt.testing.grader.grading import Assignment

ASSIGNMENTS: dict[str, str] = {
    "01_attention": "minigpt.testing.assignments.attention",
    "02_multi_head_attention": "minigpt.testing.assignments.multi_head",
    "03_gpt_forward_and_loss": "minigpt.testing.assignments.forward_and_loss",
    "04_backprop": "minigpt.testing.assignments.backprop",
    "05_jax_flax": "minigpt.testing.assignments.jax_twin",
    "06_training": "minigpt.testing.assignments.training",
    "07_decoding": "minigpt.testing.assignments.decoding",
    "08_ecommerce_applications": "minigpt.testing.assignments.ecommerce",
    "09_transfer_learning": "minigpt.testing.assignments.lora",
    "10_gpt2_to_llama": "minigpt.testing.assignments.llama",
    "11_from_model_to_assistant": "minigpt.testing.assignments.assistant",
    "12_looking_inside": "minigpt.testing.assignments.looking_inside",
}
# Exercises are named after their lesson; the names they had before still grade (``--assignment 09_lora``).
ALIASES: dict[str, str] = {"09_lora": "09_transfer_learning", "10_llama": "10_gpt2_to_llama"}


class AssignmentError(ValueError):
    """The assignment cannot be loaded; the message says why and what to pass instead."""


def load_assignment(spec: str) -> Assignment:
    """``01_attention`` (a shipped one), ``path/to/hw.py[:NAME]`` or ``package.module[:NAME]``."""
    target, _, attr = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    attr = attr or "ASSIGNMENT"
    target = ALIASES.get(target, target)
    if target in ASSIGNMENTS:
        module = importlib.import_module(ASSIGNMENTS[target])
    elif target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise AssignmentError(
                f"no assignment file {path}; give FILE.py[:VARIABLE] or one of {', '.join(ASSIGNMENTS)}"
            )
        module_spec = importlib.util.spec_from_file_location(f"minigpt_assignment_{path.stem}", path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise AssignmentError(
                f"unknown assignment {spec!r}: one of {', '.join(ASSIGNMENTS)}, FILE.py[:VARIABLE] or a module ({e})"
            ) from e
    value = getattr(module, attr, None)
    if not isinstance(value, Assignment):
        raise AssignmentError(f"{target} has no Assignment named {attr}; declare one, e.g. {attr} = Assignment(...)")
    return value

"""The grader's own look at the source (minigpt.testing.grader.static): every way of naming the reference in the
task's code, or in a helper it calls, is found; the student's own code, plumbing and the other tasks are not."""

from __future__ import annotations

import pytest

from minigpt.testing.grader.static import not_own_source

OWN = "import numpy as np\n\ndef softmax(x):\n    e = np.exp(x - x.max(-1, keepdims=True))\n    return e / e.sum(-1)\n"


@pytest.mark.parametrize(
    "source, named",
    [
        ("from minigpt.reference import functional as F\ndef softmax(x):\n    return F.softmax(x)", "`F`"),
        ("import minigpt\ndef softmax(x):\n    return minigpt.reference.softmax(x)", "minigpt.reference.softmax"),
        ("from minigpt import reference\ndef softmax(x):\n    return reference.softmax(x)", "`reference`"),
        ("def softmax(x):\n    from minigpt.model import GPT\n    return GPT", "`GPT`"),
        ("import importlib as il\ndef softmax(x):\n    return il.import_module('minigpt.reference').f(x)", "string"),
        ("def softmax(x):\n    return eval(\"__import__('minigpt.reference.functional')\")", "string"),
        ("from minigpt.reference.functional import softmax as s\ndef helper(x):\n    return s(x)\n"
         "def softmax(x):\n    return helper(x)", "`s`"),
        ("from minigpt.testing.checks.attention import _attn\ndef softmax(x):\n    return _attn(x, x, x, 0)", "_attn"),
        ("from minigpt.reference import softmax as s\nfn = s\ndef softmax(x):\n    return fn(x)", "`s`"),
    ],
)  # fmt: skip
def test_every_way_of_naming_the_reference_is_found(source, named):
    found = not_own_source([source], "softmax")
    assert found and any(named in f for f in found), found


def test_own_code_plumbing_other_tasks_and_unused_imports_are_not_flagged():
    sources = [
        "from minigpt.config import GPTConfig\nfrom minigpt.reference import functional as F\n",
        OWN + "def uses_config(x):\n    return GPTConfig, softmax(x)\n",
        "def attention(q, k, v):\n    return softmax(q @ k.T) @ v\n",
        "print(F.softmax(np.ones(3)))  # a self-check outside the task's code\n",
        "def broken(:\n",  # a cell that does not parse is the worker's to report
    ]
    assert not_own_source(sources, "softmax") == []
    assert not_own_source(sources, "uses_config", skip=["softmax"]) == []
    assert not_own_source(sources, "attention", skip=["softmax"]) == []  # the reference stands in for softmax
    assert not_own_source(sources, "attention") == []  # and its own softmax is the student's too


def test_an_allowed_module_is_not_flagged():
    source = "from minigpt.reference import functional as F\ndef softmax(x):\n    return F.softmax(x)"
    assert not_own_source([source], "softmax", allow=["minigpt.reference"]) == []

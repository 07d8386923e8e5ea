"""minigpt grade end to end: solutions score full marks, blanks score 0 with the intended message, planted
bugs cost points in their own task only, endless cells are stopped, reference calls score 0, and the
Gradescope file validates against the schema written here."""

from __future__ import annotations

import copy
import functools
import json
import re
import textwrap
from pathlib import Path

import nbformat
import pytest

from minigpt.cli import main as cli_main
from minigpt.testing.assignments import ASSIGNMENTS, load_assignment
from minigpt.testing.grader.reports import to_gradescope, to_json, to_text
from minigpt.testing.grader.runner import grade

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "notebooks" / "exercises"
NAMES = list(ASSIGNMENTS)


@functools.cache
def graded(path: str, student_id: str = "s1", timeout: float = 60.0):
    return grade(path, student_id=student_id, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_solution_scores_full_marks(name):
    report = graded(str(EXERCISES / "solutions" / f"{name}.ipynb"))
    assert report.error == "" and all(u.status == "ok" for u in report.units)
    assert report.max_score == load_assignment(name).max_points > 0
    failed = [(c.task, c.check, c.output) for c in report.checks if c.score != c.max_score]
    assert not failed
    assert report.score == report.max_score


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_blank_scores_zero_with_the_todo_message(name):
    report = graded(str(EXERCISES / f"{name}.ipynb"))
    assert report.max_score > 0 and report.score == 0
    for c in report.checks:
        assert "your function raised NotImplementedError: TODO: " in c.output, (c.task, c.output)


# notebook → runs; a run plants (function, buggy source, what the diagnosis must say) in the solution
PLANTED = {
    "01_attention": [
        [
            (
                "softmax",
                "def softmax(x):\n    e = np.exp(x - x.max(axis=0, keepdims=True))\n"
                "    return e / e.sum(axis=0, keepdims=True)",
                "softmax taken over the wrong axis",
            ),
            (
                "attention",
                "def attention(q, k, v, mask):\n    s = q @ np.swapaxes(k, -1, -2)\n"
                "    s = s if mask is None else s + mask\n    e = np.exp(s - s.max(-1, keepdims=True))\n"
                "    return e / e.sum(-1, keepdims=True) @ v",
                "not scaled by 1/√d_k",
            ),
        ],
        [
            (
                "causal_mask",
                "def causal_mask(T):\n    return np.triu(np.full((T, T), -1e4), k=1)",
                "attends to the future",
            )
        ],
    ],
    "02_multi_head_attention": [
        [
            (
                "split_heads",
                "def split_heads(x, n_head):\n    B, T, C = x.shape\n    return x.reshape(B, n_head, T, C // n_head)",
                "mixes positions and heads",
            ),
            (
                "merge_heads",
                "def merge_heads(y):\n    B, H, T, d = y.shape\n"
                "    return y.transpose(0, 2, 3, 1).reshape(B, T, H * d)",
                "heads merged in the wrong order",
            ),
        ]
    ],
    "03_gpt_forward_and_loss": [
        [
            (
                "loss",
                "def loss(logits, targets, ignore_index=-1):\n    z = logits - logits.max(-1, keepdims=True)\n"
                "    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))\n    keep = targets != ignore_index\n"
                "    t = np.where(keep, targets, 0)[..., None]\n"
                "    return (np.take_along_axis(logp, t, -1)[..., 0] * keep).sum() / keep.sum()",
                "minus sign",
            ),
            (
                "sequence_log_likelihood",
                "def sequence_log_likelihood(logits, idx):\n"
                "    z = logits - logits.max(-1, keepdims=True)\n"
                "    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))\n"
                "    return np.take_along_axis(logp, idx[..., None], -1)[..., 0].sum(-1)",
                "no shift",
            ),
        ]
    ],
    "04_backprop": [
        [
            (
                "linear_backward",
                "def linear_backward(dy, x, weight, bias):\n"
                "    return dy @ weight.T, np.einsum('bti,bto->io', x, dy), dy.sum(0)",
                "summed over batch and time",
            ),
            (
                "layer_norm_backward",
                "def layer_norm_backward(dy, x, weight, bias, eps):\n"
                "    xh = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)\n"
                "    g = dy * weight\n"
                "    dx = (g - xh * (g * xh).mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)\n"
                "    return dx, (dy * xh).sum((0, 1)), dy.sum((0, 1))",
                "forgot the mean term",
            ),
        ]
    ],
    "05_jax_flax": [
        [
            (
                "gelu_jax",
                "def gelu_jax(x):\n    return 0.5 * x * (1 + jax.scipy.special.erf(x / math.sqrt(2)))",
                "exact GELU",
            ),
            (
                "layer_norm_jax",
                "def layer_norm_jax(x, weight, bias, eps):\n    mu = np.asarray(x).mean(axis=-1, keepdims=True)\n"
                "    return (x - mu) / jnp.sqrt(jnp.var(x, axis=-1, keepdims=True) + eps) * weight + bias",
                "does not run under jax.jit",
            ),
        ]
    ],
    "06_training": [
        [
            (
                "warmup_cosine",
                "def warmup_cosine(step, lr, min_lr, warmup_steps, decay_steps):\n"
                "    if step < warmup_steps:\n        return lr * step / warmup_steps\n"
                "    p = min(max((step - warmup_steps) / (decay_steps - warmup_steps), 0.0), 1.0)\n"
                "    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))",
                "warm-up off by one",
            ),
            (
                "adamw_step",
                "def adamw_step(param, grad, m, v, t, lr, b1, b2, eps, weight_decay):\n"
                "    grad = grad + weight_decay * param\n    m = b1 * m + (1 - b1) * grad\n"
                "    v = b2 * v + (1 - b2) * grad**2\n"
                "    return param - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps), m, v",
                "Adam with L2",
            ),
        ]
    ],
    "07_decoding": [
        [
            (
                "top_k_filter",
                "def top_k_filter(logits, k):\n    if k >= logits.shape[-1]:\n        return logits\n"
                "    kth = np.sort(logits, axis=-1)[:, -k - 1][:, None]\n"
                "    return np.where(logits < kth, -np.inf, logits)",
                "keeps k+1 tokens",
            ),
            (
                "banned_mask",
                "def banned_mask(context, pieces, phrases):\n"
                "    return np.array([any(w in p for w in phrases) for p in pieces])",
                "not the piece alone",
            ),
        ]
    ],
    "08_ecommerce_applications": [
        [
            (
                "zero_shot_score",
                "def zero_shot_score(logits_fn, ids, pos_id, neg_id):\n"
                "    cll = conditional_log_likelihood\n"
                "    return cll(logits_fn, ids, neg_id) - cll(logits_fn, ids, pos_id)",
                "wrong sign",
            ),
            (
                "precision_recall",
                "def precision_recall(pred, gold, label):\n    tp = np.sum((pred == label) & (gold == label))\n"
                "    return tp / max(np.sum(gold == label), 1), tp / max(np.sum(pred == label), 1)",
                "swapped",
            ),
        ]
    ],
    "12_looking_inside": [
        [
            (
                "logit_lens",
                "def logit_lens(streams, ln_f, w_u, eps):\n    return streams @ w_u",
                "without the final norm",
            ),
            (
                "patch_position",
                "def patch_position(corrupted, clean, position):\n    out = corrupted.copy()\n"
                "    out[:, position - 1] = clean[:, position - 1]\n    return out",
                "you patched position",
            ),
        ],
        [
            (
                "attribute",
                "def attribute(parts, ln_f, u, eps):\n    mu = parts.mean(-1, keepdims=True)\n"
                "    sd = np.sqrt(((parts - mu) ** 2).mean(-1, keepdims=True) + eps)\n"
                "    return ((parts - mu) / sd * ln_f['weight']) @ u",
                "do not sum to the logit",
            ),
        ],
    ],
}
# lessons 09, 10 and 11 (LoRA, Llama, SFT and DPO), graded since their exercises got an assignment
PLANTED.update(
    {
        "11_from_model_to_assistant": [
            [
                (
                    "sft_targets",
                    "def sft_targets(ids, mask, ignore_index):\n"
                    "    return ids[:, :-1], np.where(mask[:, :-1], ids[:, 1:], ignore_index)",
                    "the mask is off by one",
                ),
                (
                    "dpo_loss",
                    "def dpo_loss(pc, pr, rc, rr, beta):\n"
                    "    return float(np.mean(np.logaddexp(0.0, beta * ((pc - rc) - (pr - rr)))))",
                    "the sign is flipped",
                ),
            ],
            [
                (
                    "sft_loss",
                    "def sft_loss(logits, targets, ignore_index):\n"
                    "    z = logits - logits.max(-1, keepdims=True)\n"
                    "    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))\n"
                    "    keep = targets != ignore_index\n"
                    "    picked = np.take_along_axis(logp, np.where(keep, targets, 0)[..., None], axis=-1)[..., 0]\n"
                    "    return float(-(picked * keep).sum() / keep.sum())",
                    "0/0",
                ),
                (
                    "dpo_grads",
                    "def dpo_grads(pc, pr, rc, rr, beta):\n"
                    "    def loss(pc, pr, rc, rr):\n"
                    "        return jnp.mean(jnp.logaddexp(0.0, -beta * ((pc - rc) - (pr - rr))))\n\n"
                    "    return jax.grad(loss, argnums=(0, 1, 2, 3))(pc, pr, rc, rr)",
                    "π_ref is not frozen",
                ),
            ],
        ],
        "09_transfer_learning": [
            [
                (
                    "lora_forward",
                    "def lora_forward(x, W, b, A, B, alpha):\n    y = x @ W + (x @ A) @ B\n"
                    "    return y if b is None else y + b",
                    "the α/r scale is missing",
                ),
                (
                    "lora_step",
                    "def lora_step(x, W, b, A, B, alpha, dy, lr):\n    s = alpha / A.shape[1]\n"
                    "    X, D = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])\n"
                    "    return W - lr * X.T @ D, b, A - lr * s * X.T @ (D @ B.T), B - lr * s * (X @ A).T @ D",
                    "a gradient reached the frozen W",
                ),
            ],
            [
                (
                    "lora_init",
                    "def lora_init(d_in, d_out, rank, rng):\n"
                    "    return rng.normal(size=(d_in, rank)), rng.normal(size=(rank, d_out))",
                    "B is not zero-initialised",
                )
            ],
        ],
        "10_gpt2_to_llama": [
            [
                (
                    "rms_norm",
                    "def rms_norm(x, weight, eps):\n    x = x - x.mean(-1, keepdims=True)\n"
                    "    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight",
                    "that is LayerNorm",
                ),
                ("repeat_kv", "def repeat_kv(x, n_rep):\n    return np.tile(x, (1, n_rep, 1, 1))", "wrong order"),
            ]
        ],
    }
)
RUNS = [(name, i) for name, runs in PLANTED.items() for i in range(len(runs))]


def plant(name: str, bugs, tmp_path: Path) -> Path:
    nb = copy.deepcopy(nbformat.read(EXERCISES / "solutions" / f"{name}.ipynb", as_version=4))
    for function, source, _ in bugs:
        cells = [
            c for c in nb.cells if "exercise" in c.metadata.get("tags", []) and c.source.startswith(f"def {function}(")
        ]
        assert len(cells) == 1, function
        cells[0].source = source
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name, run", RUNS, ids=[f"{n}-{i}" for n, i in RUNS])
def test_planted_bugs_cost_points_in_their_own_task_only(name, run, tmp_path):
    bugs = PLANTED[name][run]
    report = grade(plant(name, bugs, tmp_path), student_id="s1", timeout=60)
    scores = report.task_scores()
    bugged = {
        load_assignment(name).tasks[[t.function for t in load_assignment(name).tasks].index(f)].name: m
        for f, _, m in bugs
    }
    for task, (score, top) in scores.items():
        if task in bugged:
            assert score < top, f"{task}: the planted bug cost nothing"
            lost = [c for c in report.checks if c.task == task and c.score < c.max_score]
            assert any(bugged[task] in c.output for c in lost), [c.output for c in lost]
        else:
            assert score == top, f"{task} lost points for a bug planted elsewhere"
    assert report.score == report.max_score - sum(top - s for t, (s, top) in scores.items() if t in bugged)


def test_more_than_two_planted_bugs_per_exercise_notebook_in_all():
    for name in NAMES:
        assert sum(len(run) for run in PLANTED[name]) >= 2, name


SCRIPT_01 = """
import importlib
import math

import numpy as np
from minigpt import reference as ref


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def causal_mask(T):
    {causal_mask}


def attention(q, k, v, mask):
    {attention}
"""


def script(tmp_path: Path, name: str = "01_attention_student.py", **bodies: str) -> Path:
    path = tmp_path / name
    path.write_text(SCRIPT_01.format(**bodies), encoding="utf-8")
    return path


GOOD_MASK = "return np.triu(np.full((T, T), -np.inf), k=1)"
GOOD_ATTENTION = (
    "s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])\n    return softmax(s if mask is None else s + mask) @ v"
)


def test_a_never_ending_function_scores_zero_for_its_task_and_the_rest_is_graded(tmp_path):
    report = grade(script(tmp_path, causal_mask="while True:\n        pass", attention=GOOD_ATTENTION), timeout=2)
    scores = report.task_scores()
    assert scores["causal_mask"][0] == 0
    assert [c.status for c in report.checks if c.task == "causal_mask"] == ["timeout"]
    assert "did not return within 2 s" in next(c.output for c in report.checks if c.task == "causal_mask")
    assert scores["softmax"][0] == scores["softmax"][1] and scores["attention"][0] == scores["attention"][1]


def test_a_never_ending_cell_scores_zero_for_what_it_defines(tmp_path):
    nb = nbformat.read(EXERCISES / "solutions" / "01_attention.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("def causal_mask("))
    cell.source += "\n\n\nwhile True:  # a cell that never ends\n    pass"
    path = tmp_path / "01_attention.ipynb"
    nbformat.write(nb, path)
    report = grade(path, timeout=2)
    scores = report.task_scores()
    assert scores["causal_mask"][0] == 0 and "did not finish within 2 s" in report.checks[3].output
    assert any(u.status == "timeout" for u in report.units)
    assert scores["softmax"] == (scores["softmax"][1],) * 2 and scores["attention"][0] == scores["attention"][1]


def test_a_submission_that_kills_its_process_still_gets_a_report(tmp_path):
    path = script(tmp_path, causal_mask="import os\n    os._exit(3)", attention=GOOD_ATTENTION)
    report = grade(path, timeout=5)
    assert "exited with code 3" in report.error
    assert report.task_scores()["softmax"][0] == report.task_scores()["softmax"][1]  # scored before the kill
    assert report.task_scores()["attention"][0] == 0 and report.max_score == load_assignment("01_attention").max_points


def test_calling_the_reference_scores_zero_on_that_task(tmp_path):
    hidden_import = 'mod = importlib.import_module("minigpt." + "reference")\n    return mod.causal_mask(T, np.float64)'
    path = script(
        tmp_path, causal_mask=hidden_import, attention="return ref.scaled_dot_product_attention(q, k, v, mask)"
    )
    path.write_text(path.read_text() + "\nsoftmax = ref.softmax\n", encoding="utf-8")
    report = grade(path, timeout=30)
    by_task = {c.task: c.output for c in report.checks}
    assert report.score == 0
    assert "is minigpt.reference.functional.softmax, not code written in your submission" in by_task["softmax"]
    assert "`attention` uses `ref` (minigpt.reference)" in by_task["attention"]
    assert "called minigpt.reference.functional.causal_mask" in by_task["causal_mask"]


def test_the_same_id_gets_the_same_inputs_and_another_id_others(tmp_path):
    path = script(
        tmp_path,
        causal_mask=GOOD_MASK,
        attention="return softmax(q @ np.swapaxes(k, -1, -2) + (0 if mask is None else mask)) @ v",
    )

    def failing_input(student):
        report = grade(path, student_id=student, timeout=30)
        return next(c.output for c in report.checks if c.task == "attention" and c.score == 0)

    alice, bob = failing_input("alice"), failing_input("bob")
    assert "not scaled by 1/√d_k" in alice and "not scaled by 1/√d_k" in bob
    assert failing_input("alice") == alice
    assert alice != bob  # another seed, another smallest failing input


# -- the Gradescope file and the schema it must satisfy ----------------------------------------------------

GRADESCOPE_SCHEMA = {
    "type": "object",
    "required": ["score", "tests"],
    "properties": {
        "score": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "stdout_visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "score", "max_score", "output", "visibility"],
                "properties": {
                    "name": {"type": "string"},
                    "score": {"type": "number", "minimum": 0},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "output": {"type": "string"},
                    "visibility": {"enum": ["hidden", "after_due_date", "after_published", "visible"]},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


def validate(value, schema, where="$"):
    """The subset of JSON Schema the file needs: type, required, properties, items, enum, minimum,
    additionalProperties. Returns the list of violations."""
    errors = []
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "number": (int, float)}
    if kind and (not isinstance(value, types[kind]) or (kind == "number" and isinstance(value, bool))):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} < {schema['minimum']}")
    if kind == "object":
        errors += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        props = schema.get("properties", {})
        for key, item in value.items():
            if key in props:
                errors += validate(item, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: unexpected key {key!r}")
    if kind == "array":
        for i, item in enumerate(value):
            errors += validate(item, schema["items"], f"{where}[{i}]")
    return errors


def test_the_validator_rejects_what_gradescope_would():
    assert validate({"score": 1, "tests": []}, GRADESCOPE_SCHEMA) == []
    assert validate({"tests": []}, GRADESCOPE_SCHEMA)
    assert validate({"score": 1, "tests": [{"name": "a", "score": 1, "max_score": 1, "output": ""}]}, GRADESCOPE_SCHEMA)
    bad_visibility = {"name": "a", "score": 1, "max_score": 1, "output": "", "visibility": "students"}
    assert validate({"score": 1, "tests": [bad_visibility]}, GRADESCOPE_SCHEMA)


@pytest.mark.slow
def test_gradescope_results_validate_and_hide_the_hidden_checks(tmp_path, monkeypatch):
    run = PLANTED["06_training"][0]
    path = plant("06_training", run, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cli_main(["grade", str(path), "--student-id", "s7", "--format", "gradescope"]) == 0
    data = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert validate(data, GRADESCOPE_SCHEMA) == []
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]))
    assert all(t["score"] <= t["max_score"] for t in data["tests"])
    declared = load_assignment("06_training")
    hidden = {f"{t.name}: {c.name}" for t in declared.tasks for c in t.checks if c.hidden}
    assert hidden and {t["name"] for t in data["tests"] if t["visibility"] == "hidden"} == hidden
    assert {t["name"] for t in data["tests"]} == {f"{t.name}: {c.name}" for t in declared.tasks for c in t.checks}
    assert any(t["score"] < t["max_score"] and "warm-up off by one" in t["output"] for t in data["tests"])

    out = tmp_path / "out"
    assert (
        cli_main(
            ["grade", str(path), "--format", "gradescope", "--out", str(out), "--hidden-visibility", "after_published"]
        )
        == 0
    )
    again = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert validate(again, GRADESCOPE_SCHEMA) == []
    assert {t["name"] for t in again["tests"] if t["visibility"] == "after_published"} == hidden


def test_student_views_leave_out_hidden_checks_and_instructor_views_keep_them():
    report = graded(str(EXERCISES / "01_attention.ipynb"))
    hidden = [c for c in report.checks if c.hidden]
    assert hidden
    student_text, instructor_text = to_text(report), to_text(report, instructor=True)
    for c in hidden:
        assert c.check not in student_text and c.check in instructor_text
    student = to_json(report)
    names = {c["check"] for t in student["tasks"] for c in t["checks"]}
    assert names.isdisjoint({c.check for c in hidden}) and student["hidden_checks"] == len(hidden)
    assert student["max_score"] == report.max_score - sum(c.max_score for c in hidden)
    full = to_json(report, instructor=True)
    assert {c["check"] for t in full["tasks"] for c in t["checks"]} == {c.check for c in report.checks}
    assert to_gradescope(report)["score"] == report.score


def test_an_instructor_declares_a_graded_task_in_a_few_lines(tmp_path, capsys):
    (tmp_path / "hw.py").write_text(
        textwrap.dedent(
            """
            from functools import partial

            from minigpt.reference import functional as F
            from minigpt.testing.checkers import check_softmax
            from minigpt.testing.grader.grading import Assignment

            hw = Assignment("hw1")
            hw.task("softmax", reference=F.softmax).check("matches", 2, partial(check_softmax, max_examples=5)).check(
                "half right", 2, lambda f: 0.5, hidden=True
            )
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "sub.py").write_text(
        "import numpy as np\n\ndef softmax(x):\n    return np.exp(x) / np.exp(x).sum(-1, keepdims=True)\n"
    )
    assert (
        cli_main(
            [
                "grade",
                str(tmp_path / "sub.py"),
                "--assignment",
                f"{tmp_path / 'hw.py'}:hw",
                "--format",
                "json",
                "--instructor",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    checks = {c["check"]: c for c in data["tasks"][0]["checks"]}
    assert checks["half right"]["score"] == 1.0 and checks["half right"]["status"] == "partial"
    assert checks["matches"]["score"] == 0 and "overflowed" in checks["matches"]["output"]
    assert data["score"] == 1.0 and data["max_score"] == 4.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grade", "missing.ipynb"], "no such file"),
        (["grade", "{tmp}/notes.txt"], "reads .ipynb notebooks or .py files"),
        (["grade", "{tmp}/sub.py"], "cannot tell which assignment"),
        (["grade", "{tmp}/sub.py", "--assignment", "99_nothing"], "unknown assignment '99_nothing'"),
        (["grade", "{tmp}/sub.py", "--assignment", "01_attention", "--timeout", "0"], "--timeout must be a positive"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(argv, message, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "sub.py").write_text("x = 1\n")
    assert cli_main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(re.escape(message), err) and "\n" not in err and "Traceback" not in err

"""Where two implementations part: compare two captures activation by activation, in forward order.

"The logits differ" says nothing about where. Given two captures with the same names (``minigpt.interpret.capture``
of the reference and of the JAX model, of a model with a suspected bug, or of Hugging Face transformers through
``minigpt.interpret.hf``), ``compare_layers`` measures every activation and names the first one beyond tolerance:
everything before it agrees, so the mistake sits in the step that computes it (e.g. ``h.2.ln_1.out``: block 2's
first norm).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class LayerRow:
    """One activation: max |a − b|, the normwise relative error max |a − b| / max |b|, and whether
    max |a − b| ≤ atol + rtol · max |b|: errors are measured against the activation's scale, not element by element,
    so that an element near zero in a float32 computation does not count as a divergence."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class LayerReport:
    rows: list[LayerRow]
    first_divergence: str | None  # the first name beyond tolerance in forward order; None if all agree
    rtol: float
    atol: float
    missing: list[str] = field(default_factory=list)  # names that only one capture has

    @property
    def passed(self) -> bool:
        return self.first_divergence is None

    def table(self) -> str:
        head = f"{'activation':<22} {'shape':<18} {'max abs':>9} {'rel/max':>9}  status"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            mark = "ok" if r.passed else ("FIRST DIVERGENCE" if r.name == self.first_divergence else "differs")
            shape = "×".join(map(str, r.shape))
            lines.append(f"{r.name:<22} {shape:<18} {r.max_abs:9.2e} {r.max_rel:9.2e}  {mark}")
        verdict = (
            f"all {len(self.rows)} activations agree (rtol {self.rtol:g}, atol {self.atol:g})"
            if self.passed
            else f"first divergence: {self.first_divergence} ({describe(self.first_divergence)})"
        )
        lines.append(verdict)
        if self.missing:
            lines.append(f"compared only where both have the name; not compared: {', '.join(self.missing)}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r in d["rows"]:  # inf is not JSON
            r["max_abs"], r["max_rel"] = (None if math.isinf(v) else v for v in (r["max_abs"], r["max_rel"]))
        return d


def describe(name: str) -> str:
    """'h.2.ln_1.out' → 'block 2, ln_1.out'; names outside the blocks are returned as they are."""
    parts = name.split(".")
    if len(parts) > 2 and parts[0] == "h" and parts[1].isdigit():
        return f"block {parts[1]}, {'.'.join(parts[2:])}"
    return name


def compare_activation(name: str, a: Any, b: Any, rtol: float, atol: float) -> LayerRow:
    """One row: ``a`` the implementation under test, ``b`` the one taken as truth; a shape mismatch or a
    non-finite value where the other has none counts as an infinite error."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return LayerRow(name, tuple(b.shape), math.inf, math.inf, False)
    same_nonfinite = (np.isnan(a) & np.isnan(b)) | ((a == b) & ~np.isfinite(b))
    err = np.where(same_nonfinite, 0.0, np.abs(a - b))
    err = np.where(np.isnan(err), math.inf, err)
    max_abs = float(np.max(err)) if err.size else 0.0
    scale = float(np.max(np.abs(np.where(np.isfinite(b), b, 0.0)))) if b.size else 0.0
    passed = max_abs <= atol + rtol * scale
    return LayerRow(name, tuple(b.shape), max_abs, max_abs / (scale + 1e-300) if max_abs else 0.0, passed)


def compare_layers(
    acts_a: dict[str, Any], acts_b: dict[str, Any], *, rtol: float = 1e-6, atol: float = 1e-8
) -> LayerReport:
    """Compare two captures name by name, in the forward order of ``acts_a`` (``b`` taken as the truth for the
    relative error): an activation agrees when max |a − b| ≤ atol + rtol · max |b|. ``first_divergence`` is the
    first name beyond tolerance, None if all agree. Names that only one side has are listed in ``missing`` and not
    compared."""
    if rtol < 0 or atol < 0:
        raise ValueError(f"rtol and atol must be ≥ 0, got rtol={rtol}, atol={atol}")
    common = [n for n in acts_a if n in acts_b]
    if not common:
        raise ValueError(
            f"the two captures share no activation name (first has {list(acts_a)[:4]}…, second "
            f"{list(acts_b)[:4]}…); capture both with minigpt.interpret's naming scheme"
        )
    rows = [compare_activation(n, acts_a[n], acts_b[n], rtol, atol) for n in common]
    first = next((r.name for r in rows if not r.passed), None)
    missing = [n for n in acts_a if n not in acts_b] + [n for n in acts_b if n not in acts_a]
    return LayerReport(rows, first, rtol, atol, missing)

"""minigpt.viz.interpret: the explain figures draw CJK labels without missing glyphs, as PNG bytes or files."""

from __future__ import annotations

import warnings

import numpy as np

from minigpt.viz.interpret import attribution_figure, lens_figure, patching_figure, png, save

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_three_figures_render_chinese_labels_to_png(tmp_path):
    tokens = list("这款手机的性能非常好，")
    T = len(tokens)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph (tofu) warns: fail on it
        lens = lens_figure(rng.random((3, T)), [tokens] * 3, tokens, title="logit lens: 好 - 差")
        bars = attribution_figure(
            ["embed", "h.0.attn.head.0", "h.0.attn.bias", "h.0.mlp", "ln_f.bias"], rng.normal(size=5)
        )
        patch = patching_figure(np.where(rng.random((2, T)) < 0.5, -1e-9, 1.0), tokens)
        images = [png(fig) for fig in (lens, bars, patch)]
    assert all(image.startswith(PNG) and len(image) > 5000 for image in images)
    assert save(lens, tmp_path / "lens.png").read_bytes().startswith(PNG)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind
    texts = [t.get_text() for t in patch.axes[0].texts]
    assert "-0.00" not in texts and "0.00" in texts  # rounding noise below zero is shown as 0.00
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()] == [
        "embed",
        "L0 H0",
        "L0 attn bias",
        "L0 MLP",
        "ln_f.bias",
    ]

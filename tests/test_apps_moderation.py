"""The moderation filter: banned phrases and a P(neg) threshold, applied to finished texts."""

from __future__ import annotations

import pytest

from minigpt.apps.moderation import ModerationFilter


def fake_neg_prob(texts):
    return [0.95 if "差" in t else 0.1 for t in texts]


def test_rejects_banned_phrases_and_too_negative_texts_with_reasons():
    f = ModerationFilter(banned=["垃圾"], neg_prob=fake_neg_prob, max_neg_prob=0.9)
    kept, rejected = f.filter(["很好用", "垃圾产品", "质量差", "差，垃圾", ""])
    assert kept == ["很好用", ""]
    reasons = {v.text: v.reasons for v in rejected}
    assert reasons["垃圾产品"] == ["banned phrase '垃圾'"]
    assert reasons["质量差"] == ["P(neg)=0.95 > 0.9"]
    assert len(reasons["差，垃圾"]) == 2
    assert f.check("好").ok and not f.check("垃圾").ok


def test_phrases_only_without_a_classifier_and_bad_settings():
    assert ModerationFilter(banned=["差评"]).filter(["差评", "质量差"])[0] == ["质量差"]
    with pytest.raises(ValueError, match="non-empty strings"):
        ModerationFilter(banned=[""])
    with pytest.raises(ValueError, match="max_neg_prob"):
        ModerationFilter(max_neg_prob=1.5)

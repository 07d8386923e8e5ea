"""Merchant replies to customer reviews: the aspect lexicon and the reply templates (``minigpt.data.replies``).

The replies are synthetic and the reviews real. A correct reply to a review (a) thanks a positive review
and apologises for a negative one, as the review's true label says, and (b) names the aspects the review
raises, as the aspect lexicon finds them in its text. It is composed of three parts, each picked from a
small fixed set by a hash of the review (so the data is deterministic, and varied):

    opening   by label:  pos  感谢您的好评！ | 谢谢您的支持！ | 非常感谢您的认可！
                         neg  非常抱歉给您带来不好的体验。 | 很抱歉让您失望了。 | 对不起，给您添麻烦了。
    aspects   if any:    pos  您对{A}的肯定是我们前进的动力。 | 很高兴您喜欢我们的{A}。
                         neg  关于{A}的问题，我们会马上改进。 | 您说的{A}问题我们已经记下，一定改进。
    closing   by label:  pos  欢迎再次光临！ | 期待您的再次光临！
                         neg  希望您再给我们一次机会。 | 我们会努力做得更好。

where {A} lists the review's aspects (at most ``MAX_ASPECTS``, in lexicon order) joined by 和 / 、.
A *rejected* reply for preference tuning is either the same reply composed for the wrong label ("wrong
sentiment": thanking a complaint, apologising for praise) or the right opening and closing without the
aspect sentence ("ignores aspects"); a review with no aspect always gets the wrong-sentiment kind.
"""

from __future__ import annotations

import hashlib

# aspect → the words that show a review talks about it (first match wins the aspect, not the word)
ASPECT_LEXICON: dict[str, tuple[str, ...]] = {
    "物流": ("物流", "快递", "送货", "发货", "配送"),
    "电池": ("电池", "续航", "待机", "充电"),
    "屏幕": ("屏幕", "显示屏", "屏"),
    "服务": ("服务", "态度", "前台", "客服", "服务员"),
    "价格": ("价格", "价钱", "性价比", "便宜", "贵"),
    "房间": ("房间", "客房", "床", "卫生间"),
    "质量": ("质量", "做工", "品质"),
    "早餐": ("早餐",),
    "位置": ("位置", "交通", "地段"),
    "键盘": ("键盘",),
    "系统": ("系统", "驱动", "软件"),
    "内容": ("内容", "情节", "故事"),
}
MAX_ASPECTS = 3
OPENINGS = {
    "pos": ("感谢您的好评！", "谢谢您的支持！", "非常感谢您的认可！"),
    "neg": ("非常抱歉给您带来不好的体验。", "很抱歉让您失望了。", "对不起，给您添麻烦了。"),
}
ASPECT_SENTENCES = {
    "pos": ("您对{A}的肯定是我们前进的动力。", "很高兴您喜欢我们的{A}。"),
    "neg": ("关于{A}的问题，我们会马上改进。", "您说的{A}问题我们已经记下，一定改进。"),
}
CLOSINGS = {
    "pos": ("欢迎再次光临！", "期待您的再次光临！"),
    "neg": ("希望您再给我们一次机会。", "我们会努力做得更好。"),
}
LABELS = ("pos", "neg")
REJECTED_KINDS = ("wrong_sentiment", "ignores_aspects")


def find_aspects(text: str) -> list[str]:
    """The aspects of ``ASPECT_LEXICON`` whose words occur in ``text``, in lexicon order."""
    return [aspect for aspect, words in ASPECT_LEXICON.items() if any(w in text for w in words)]


def join_aspects(aspects: list[str]) -> str:
    """物流 / 物流和电池 / 物流、电池和屏幕: the first ``MAX_ASPECTS`` aspects as a Chinese list."""
    a = aspects[:MAX_ASPECTS]
    return a[0] if len(a) == 1 else "、".join(a[:-1]) + "和" + a[-1]


def _pick(options: tuple[str, ...], review: str, part: str) -> str:
    h = hashlib.sha256(f"{part}:{review}".encode()).digest()
    return options[int.from_bytes(h[:4], "big") % len(options)]


def compose_reply(review: str, label: str, aspects: list[str], *, with_aspects: bool = True) -> str:
    """opening(label) + aspect sentence (if ``aspects`` and ``with_aspects``) + closing(label); see the module."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    parts = [_pick(OPENINGS[label], review, "open")]
    if aspects and with_aspects:
        parts.append(_pick(ASPECT_SENTENCES[label], review, "aspect").replace("{A}", join_aspects(aspects)))
    parts.append(_pick(CLOSINGS[label], review, "close"))
    return "".join(parts)


def rejected_reply(review: str, label: str, aspects: list[str]) -> tuple[str, str]:
    """(a worse reply, its kind): ``wrong_sentiment`` or ``ignores_aspects``, alternating by a hash of the review
    (always ``wrong_sentiment`` when the review has no aspect)."""
    kind = _pick(REJECTED_KINDS, review, "rejected") if aspects else "wrong_sentiment"
    if kind == "wrong_sentiment":
        return compose_reply(review, "neg" if label == "pos" else "pos", aspects), kind
    return compose_reply(review, label, aspects, with_aspects=False), kind


def template_characters() -> set[str]:
    """Every character a reply can contain (a tokenizer must hold them all)."""
    texts = [*ASPECT_LEXICON, "和、"]
    for table in (OPENINGS, ASPECT_SENTENCES, CLOSINGS):
        texts += [t.replace("{A}", "") for options in table.values() for t in options]
    return set("".join(texts))

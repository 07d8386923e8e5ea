"""The review classifier: JAX head == NumPy reference head, padding, bad input, fine-tuning, baseline, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.apps import classifier as C
from minigpt.config import GPTConfig
from minigpt.reference import init_params
from minigpt.tokenizers import CharTokenizer

TOK = CharTokenizer.from_texts(["这款手机很好差评物流太慢了推荐不喜欢一般"])
CFG = GPTConfig.preset("tiny", vocab_size=TOK.vocab_size)
GPT = init_params(CFG, seed=1, dtype=np.float32)


def clf(seed: int = 0):
    head = C.init_head(CFG, seed)
    head["weight"] *= 50  # big enough that head errors would show
    head["bias"] = np.array([0.3, -0.2], np.float32)
    return {"gpt": GPT, "head": head}


@settings(max_examples=5, deadline=None)
@given(
    st.lists(st.text(alphabet="这款手机很好差评物流太慢", min_size=1, max_size=CFG.block_size), min_size=1, max_size=4)
)
def test_jax_head_logits_equal_the_numpy_reference_head(texts):
    c = clf()
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    np.testing.assert_allclose(
        C.head_logits(c, x, mask, CFG), C.head_logits_numpy(GPT, c["head"], x, mask, CFG), rtol=2e-4, atol=2e-4
    )


def test_padding_does_not_change_a_review_s_logits():
    c = clf()
    alone = C.head_logits(c, *C.encode_reviews(TOK, ["很好"], CFG.block_size), CFG)
    batch = C.head_logits(c, *C.encode_reviews(TOK, ["很好", "物流太慢了不推荐"], CFG.block_size), CFG)
    np.testing.assert_allclose(batch[0], alone[0], rtol=1e-5, atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="review 1 is empty"):
        C.encode_reviews(TOK, ["好", ""], CFG.block_size)
    with pytest.raises(ValueError, match="list of strings"):
        C.encode_reviews(TOK, "好", CFG.block_size)
    long = "这款手机很好" * 5  # 30 characters > block_size 16
    with pytest.warns(UserWarning, match="30 tokens > block_size=16"):
        x, mask = C.encode_reviews(TOK, [long], CFG.block_size)
    assert x.shape == (1, 16) and TOK.decode(x[0].tolist()) == long[:16] and mask.sum() == 16
    with pytest.raises(ValueError, match="unknown labels"):
        C.label_ids(["pos", "meh"])


def test_fine_tuning_learns_a_separable_task():
    rng = np.random.default_rng(0)
    texts, y = [], []
    for _ in range(64):
        label = int(rng.integers(2))
        body = "".join(rng.choice(list("这款手机物流"), size=int(rng.integers(2, 10))))
        texts.append(body + ("很好" if label else "差评"))
        y.append(label)
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    trained = C.fine_tune(GPT, CFG, x, mask, np.array(y), steps=60, batch_size=16, lr=1e-3, head_lr=3e-2)
    acc = (C.head_logits(trained, x, mask, CFG).argmax(1) == np.array(y)).mean()
    assert acc == 1.0
    probs = C.predict_proba(trained, CFG, TOK, ["物流很好", "物流差评"])
    assert probs[0, 1] > 0.5 > probs[1, 1] and np.allclose(probs.sum(1), 1)


def test_bag_of_chars_learns_which_characters_matter():
    texts = ["好用", "很好", "好评", "差劲", "很差", "差评"] * 5
    y = np.array([1, 1, 1, 0, 0, 0] * 5)
    bag = C.BagOfChars(min_count=1).fit(texts, y, steps=200, lr=1.0)
    p = bag.predict_proba(["好", "差", "很好用", "很差劲"])
    assert p[0] > 0.8 and p[1] < 0.2 and p[2] > 0.5 > p[3]
    assert "未" not in bag.vocab and bag.features(["未"]).sum() == 0  # unseen characters carry no weight


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=30))
def test_report_matches_brute_force_counts(pairs):
    t, p = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    r = C.report(t, p)
    assert r["accuracy"] == pytest.approx(sum(a == b for a, b in pairs) / len(pairs))
    for c, name in enumerate(C.CLASSES):
        tp = sum(a == c and b == c for a, b in pairs)
        predicted, actual = sum(b == c for _, b in pairs), sum(a == c for a, _ in pairs)
        assert r[f"precision_{name}"] == pytest.approx(tp / predicted if predicted else 0.0)
        assert r[f"recall_{name}"] == pytest.approx(tp / actual if actual else 0.0)
    assert r["confusion"][0][1] == sum(a == 0 and b == 1 for a, b in pairs)


def test_plot_confusion_labels_every_cell():
    import matplotlib

    matplotlib.use("Agg")
    ax = C.plot_confusion(np.array([[5, 1], [2, 7]]), "t")
    assert sorted(t.get_text() for t in ax.texts) == ["1", "2", "5", "7"]

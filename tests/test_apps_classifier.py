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


GPT64 = init_params(CFG, seed=1, dtype=np.float64)
REVIEW = st.text(alphabet="这款手机很好差评物流太慢", min_size=1, max_size=CFG.block_size)


@settings(max_examples=5, deadline=None)
@given(st.lists(REVIEW, min_size=1, max_size=4), st.sampled_from(C.POOLINGS))
def test_jax_head_logits_equal_the_numpy_reference_head(texts, pooling):
    c = clf()
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    np.testing.assert_allclose(
        C.head_logits(c, x, mask, CFG, pooling=pooling),
        C.head_logits_numpy(GPT, c["head"], x, mask, CFG, pooling=pooling),
        rtol=2e-4,
        atol=2e-4,
    )


@settings(max_examples=8, deadline=None)
@given(st.lists(REVIEW, min_size=2, max_size=5))
def test_pooling_of_a_padded_batch_equals_each_review_alone(texts):
    """last: the final position of the unpadded row; mean: the mean over it (float64 reference, per row)."""
    from minigpt.reference import hidden_states

    head = {k: v.astype(np.float64) for k, v in clf()["head"].items()}
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    for pooling, reduce in (("last", lambda h: h[-1]), ("mean", lambda h: h.mean(axis=0))):
        batch = C.head_logits_numpy(GPT64, head, x, mask, CFG, pooling=pooling)
        for i, text in enumerate(texts):
            h = hidden_states(GPT64, np.array([TOK.encode(text)]), CFG)[0]  # (n_i, C): this review alone
            np.testing.assert_allclose(batch[i], reduce(h) @ head["weight"] + head["bias"], rtol=1e-10, atol=1e-12)


def test_padding_does_not_change_a_review_s_logits():
    c = clf()
    for pooling in C.POOLINGS:
        alone = C.head_logits(c, *C.encode_reviews(TOK, ["很好"], CFG.block_size), CFG, pooling=pooling)
        batch = C.head_logits(
            c, *C.encode_reviews(TOK, ["很好", "物流太慢了不推荐"], CFG.block_size), CFG, pooling=pooling
        )
        np.testing.assert_allclose(batch[0], alone[0], rtol=1e-5, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(1, 80), min_size=1, max_size=30), st.integers(1, 7), st.integers(0, 3))
def test_length_buckets_and_bucketed_batches(lengths, batch_size, seed):
    T = max(lengths)
    mask = (np.arange(T)[None, :] < np.array(lengths)[:, None]).astype(np.float32)
    width = C.length_buckets(mask, min_width=4)
    for n, w in zip(lengths, width, strict=True):  # the smallest power of two ≥ max(n, 4), or T
        assert w == min(next(2**k for k in range(2, 10) if 2**k >= n), T)
    batches = C.bucketed_batches(width, batch_size, seed)
    n_batches = sum(-(-int((width == w).sum()) // batch_size) for w in np.unique(width))
    for _ in range(2):  # two epochs: each covers every row, in full batches of one width
        epoch = [next(batches) for _ in range(n_batches)]
        assert set(np.concatenate(epoch).tolist()) == set(range(len(lengths)))
        assert all(len(set(width[b].tolist())) == 1 and len(b) == batch_size for b in epoch)
        assert sum(len(set(b.tolist())) for b in epoch) >= len(lengths)


def test_unknown_pooling_is_a_clear_error():
    x, mask = C.encode_reviews(TOK, ["很好"], CFG.block_size)
    with pytest.raises(ValueError, match=r"pooling must be one of \['mean', 'last'\], got 'max'"):
        C.head_logits(clf(), x, mask, CFG, pooling="max")


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


def separable_task(n: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    texts, y = [], []
    for _ in range(n):
        label = int(rng.integers(2))
        body = "".join(rng.choice(list("这款手机物流"), size=int(rng.integers(2, 10))))
        texts.append(body + ("很好" if label else "差评"))
        y.append(label)
    return texts, np.array(y)


def test_fine_tuning_learns_a_separable_task():
    pooling = "last"  # mean pooling is trained in the next test
    texts, y = separable_task()
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    before = C.smoothed_cross_entropy(C.head_logits(clf(), x, mask, CFG, pooling=pooling), y)
    trained = C.fine_tune(
        GPT, CFG, x, mask, y, pooling=pooling, steps=60, batch_size=16, lr=1e-3, head_lr=3e-2, warmup=0.1
    )
    logits = C.head_logits(trained, x, mask, CFG, pooling=pooling)
    assert (logits.argmax(1) == y).mean() == 1.0
    assert float(C.smoothed_cross_entropy(logits, y)) < 0.5 * float(before)
    probs = C.predict_proba(trained, CFG, TOK, ["物流很好", "物流差评"], pooling=pooling)
    assert probs[0, 1] > 0.5 > probs[1, 1] and np.allclose(probs.sum(1), 1)


def test_frozen_trunk_stays_bit_identical_and_early_stopping_keeps_the_best():
    texts, y = separable_task()
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    seen: list[float] = []

    def log(line: str) -> None:
        if "holdout accuracy" in line:
            seen.append(float(line.split("holdout accuracy ")[1].split()[0]))

    trained = C.fine_tune(
        GPT,
        CFG,
        x,
        mask,
        y,
        lr=0.0,
        head_lr=3e-2,
        steps=40,
        eval_every=10,
        holdout=(x[:32], mask[:32], y[:32]),
        log=log,
    )
    import jax

    same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), trained["gpt"], GPT)
    assert all(jax.tree.leaves(same))
    assert len(seen) == 4
    acc = (C.head_logits(trained, x[:32], mask[:32], CFG).argmax(1) == y[:32]).mean()
    assert acc == pytest.approx(max(seen))


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=2, max_size=2),
    st.integers(0, 1),
    st.floats(0, 0.5),
)
def test_smoothed_cross_entropy_matches_its_formula(z, label, eps):
    z64 = np.array(z, np.float64)
    logp = z64 - np.log(np.exp(z64).sum())
    q = np.full(2, eps / 2) + (1 - eps) * (np.arange(2) == label)
    got = float(C.smoothed_cross_entropy(np.array([z], np.float32), np.array([label]), eps))
    assert got == pytest.approx(-(q * logp).sum(), rel=1e-5, abs=1e-5)


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


def test_lora_fine_tuning_learns_with_the_base_untouched_outside_its_targets():
    import jax

    from minigpt.adapters import LoraSpec

    texts, y = separable_task()
    x, mask = C.encode_reviews(TOK, texts, CFG.block_size)
    spec = LoraSpec(rank=4, alpha=8, targets="c_attn")
    trained = C.fine_tune(GPT, CFG, x, mask, y, lora=spec, steps=60, batch_size=16, lr=1e-2, head_lr=3e-2)
    assert (C.head_logits(trained, x, mask, CFG).argmax(1) == y).mean() >= 0.9
    for i, (new, old) in enumerate(zip(trained["gpt"]["h"], GPT["h"], strict=True)):
        # merged W + s·A B moved the adapted matrices only; every other tensor is bit-identical to GPT's
        assert not np.array_equal(new["attn"]["c_attn"]["weight"], old["attn"]["c_attn"]["weight"]), i
        rest = {k: v for k, v in new.items() if k != "attn"}, {k: v for k, v in old.items() if k != "attn"}
        same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), *rest)
        assert all(jax.tree.leaves(same)) and np.array_equal(
            new["attn"]["c_proj"]["weight"], old["attn"]["c_proj"]["weight"]
        )
    for name in ("wte", "wpe", "ln_f"):
        same = jax.tree.map(lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)), trained["gpt"][name], GPT[name])
        assert all(jax.tree.leaves(same)), name

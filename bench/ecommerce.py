"""E-commerce applications on the review corpus, end to end, with the figures for the README.

    PYTHONPATH=. python bench/ecommerce.py --work runs/ecommerce --lm-steps 800 --clf-steps 300 --samples 200

1. prepare the reviews with <pos>/<neg> control tokens and train the baby GPT on them (minigpt.train);
2. fine-tune it as a classifier (mean-pooled hidden states + linear head) and fit the bag-of-characters
   logistic regression; report both on the val split;
3. zero-shot: argmax_ℓ log P(review | <ℓ>) with the LM alone;
4. control accuracy: generate --samples reviews per label and classify them with the fine-tuned classifier;
5. moderation: how many generated reviews the filter rejects.
Writes WORK/results.json and WORK/confusion.png; prints a table and the seconds each stage took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from minigpt.hostmem import configure_cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/ecommerce")
    p.add_argument("--lm-steps", type=int, default=800)
    p.add_argument("--clf-steps", type=int, default=300)
    p.add_argument("--samples", type=int, default=200, help="generated reviews per label")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    configure_cpu()  # what the minigpt CLI does before JAX starts (minigpt.hostmem)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minigpt.apps import classifier as C
    from minigpt.apps.moderation import ModerationFilter
    from minigpt.apps.sentiment import control_id, prepare_sentiment, zero_shot_predict
    from minigpt.config import GPTConfig
    from minigpt.data import load_lines, prepare
    from minigpt.generate import generate
    from minigpt.model import from_params
    from minigpt.train import TrainConfig, load_run, train

    work = Path(args.work)
    if work.exists() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty; choose another --work")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    prepare("reviews", work / "data")
    meta = prepare_sentiment(work / "data", work / "data-sentiment")
    times["prepare"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cfg = GPTConfig.preset("baby", vocab_size=meta["vocab_size"])
    tcfg = TrainConfig(
        data=str(work / "data-sentiment"), out=str(work / "lm"), max_steps=args.lm_steps, progress=False,
        eval_interval=max(args.lm_steps // 4, 1), ckpt_interval=args.lm_steps, seed=args.seed,
    )  # fmt: skip
    summary = train(cfg, tcfg, log=lambda s: None)
    cfg, gpt, tok = load_run(work / "lm")
    times["lm_train"] = time.perf_counter() - t0

    train_lines, val_lines = load_lines(work / "data", "train"), load_lines(work / "data", "val")
    tr_text, tr_y = [t for t, _ in train_lines], C.label_ids([lab for _, lab in train_lines])
    va_text, va_y = [t for t, _ in val_lines], C.label_ids([lab for _, lab in val_lines])

    t0 = time.perf_counter()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # long reviews: truncated to block_size (documented)
        x_tr, m_tr = C.encode_reviews(tok, tr_text, cfg.block_size)
        x_va, m_va = C.encode_reviews(tok, va_text, cfg.block_size)
    clf = C.fine_tune(gpt, cfg, x_tr, m_tr, tr_y, steps=args.clf_steps, seed=args.seed)
    clf_pred = C.head_logits(clf, x_va, m_va, cfg).argmax(axis=1)
    times["classifier"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bag = C.BagOfChars().fit(tr_text, tr_y)
    bag_pred = (bag.predict_proba(va_text) > 0.5).astype(np.int64)
    times["bag_of_chars"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    zs_pred = zero_shot_predict(gpt, cfg, tok, va_text)
    times["zero_shot"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = from_params(gpt, cfg)
    newline = tok.encode("\n")[0]
    generated: dict[str, list[str]] = {}
    for k, label in enumerate(C.CLASSES):
        rows = generate(
            model, [[control_id(tok, label)]] * args.samples, max_new_tokens=cfg.block_size - 1,
            temperature=1.0, top_k=None, stop_tokens=[newline], seed=args.seed + k,
        )  # fmt: skip
        generated[label] = [tok.decode([i for i in r if i != newline]) for r in rows]
    times["generate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    control = {}
    for label, texts in generated.items():
        nonempty = [t for t in texts if t]
        probs = C.predict_proba(clf, cfg, tok, nonempty)
        hits = int((probs.argmax(axis=1) == C.CLASSES.index(label)).sum())
        control[label] = {"n": len(texts), "empty": len(texts) - len(nonempty), "accuracy": hits / len(texts)}
    mod = ModerationFilter(
        banned=["差评", "垃圾"], neg_prob=lambda ts: C.predict_proba(clf, cfg, tok, ts)[:, 0], max_neg_prob=0.9
    )
    rejected = {label: len(mod.filter([t for t in texts if t])[1]) for label, texts in generated.items()}
    times["control_and_moderation"] = time.perf_counter() - t0

    rows = {
        "fine-tuned GPT (mean-pooled head)": C.report(va_y, clf_pred),
        "bag-of-characters logistic regression": C.report(va_y, bag_pred),
        "zero-shot LM, log P(x|<pos>) vs log P(x|<neg>)": C.report(va_y, zs_pred),
    }
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, (name, r) in zip(axes, rows.items(), strict=True):
        C.plot_confusion(np.array(r["confusion"]), name.split(",")[0][:28], ax=ax)
    fig.tight_layout()
    fig.savefig(work / "confusion.png", dpi=120)

    results = {
        "lm": {"steps": args.lm_steps, "final_val_loss": summary.get("val_loss"), "summary": summary},
        "val_lines": len(va_y),
        "classification": rows,
        "control": control,
        "moderation_rejected": rejected,
        "samples": {k: v[:5] for k, v in generated.items()},
        "seconds": times,
    }
    (work / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), "utf-8")
    print(f"val: {len(va_y)} reviews  (LM: baby preset, {args.lm_steps} steps)")
    print(f"{'model':50s} {'acc':>6s} {'P(neg)':>7s} {'R(neg)':>7s} {'P(pos)':>7s} {'R(pos)':>7s}")
    for name, r in rows.items():
        print(
            f"{name:50s} {r['accuracy']:6.3f} {r['precision_neg']:7.3f} {r['recall_neg']:7.3f} "
            f"{r['precision_pos']:7.3f} {r['recall_pos']:7.3f}"
        )
    for label, c in control.items():
        print(f"control <{label}>: {c['accuracy']:.3f} of {c['n']} generated reviews classified {label} "
              f"({c['empty']} empty); moderation rejected {rejected[label]}")  # fmt: skip
    for label, texts in generated.items():
        print(f"<{label}> samples:", " | ".join(texts[:3]))
    print("seconds:", {k: round(v, 1) for k, v in times.items()}, "total", round(sum(times.values()), 1))


if __name__ == "__main__":
    main()

"""The review-reply assistant, measured end to end in one run: pretraining, SFT, DPO and LoRA, judged on held-out
real reviews.

    PYTHONPATH=. python bench/assistant.py --work runs/assistant

1. ``minigpt prepare reviews`` and ``minigpt prepare review-replies --base`` it (one char vocab + the chat tokens;
   the same hash split, so no validation review reaches any model);
2. the baby GPT with block 128 pretrained on the reviews' TRAIN split (next-token loss), or ``--pretrained-run``;
3. four models: the pretrained model prompted with the chat template (no tuning: the chat tokens' embeddings are
   fresh), SFT (full fine-tuning, ``--task sft --init_from``), SFT + DPO (``--task dpo --init_from`` the SFT run,
   β = ``--beta``) and SFT with LoRA (rank 8 on every linear layer, base frozen);
4. each replies greedily (≤ 64 new tokens, stop at ``<|end|>``) to the first ``--eval-n`` validation reviews, and
   is scored on: format (the reply ends with ``<|end|>`` within the budget); sentiment-appropriate (a thanks
   phrase and no apology for a positive review, an apology and no thanks for a negative one, by the lexicon
   judge below, which shares no code with the model or the data); aspect recall (of the aspects the lexicon finds
   in the shown review, the share whose name the reply contains); on the held-out preference pairs, the share where
   log π(chosen) > log π(rejected), and for SFT + DPO the DPO reward accuracy against its reference (the SFT model).
Runs already finished in WORK are reused. Writes WORK/results.json and WORK/replies.jsonl (every reply with its
verdicts, for checking the judge by hand); prints the table and the seconds each stage took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from minigpt.training.hostmem import configure_cpu

# The judge: its own phrase lists, written here, so that it shares no code with the templates it judges.
THANKS = ("感谢", "谢谢", "多谢")
APOLOGY = ("抱歉", "对不起", "道歉", "歉意", "不好意思")
GOALS = {"format": 0.98, "sentiment": 0.862, "aspect_recall": 0.80}
BUDGET = 64  # new tokens per reply


def judge_sentiment(reply: str, label: str) -> bool:
    """Thanks (and no apology) for a positive review; an apology (and no thanks) for a negative one."""
    thanks, sorry = any(w in reply for w in THANKS), any(w in reply for w in APOLOGY)
    return (thanks and not sorry) if label == "pos" else (sorry and not thanks)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/assistant")
    p.add_argument("--pretrained-run", default=None, help="reuse this run (baby, block 128, on the reviews' vocab)")
    p.add_argument("--pretrain-steps", type=int, default=1500, help="next-token steps (batch 16 × 128 tokens)")
    p.add_argument("--sft-steps", type=int, default=600, help="SFT steps, full and LoRA (batch 16 conversations)")
    p.add_argument("--dpo-steps", type=int, default=200, help="DPO steps (batch 8 pairs)")
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--dpo-lr", type=float, default=1e-4)
    p.add_argument("--eval-n", type=int, default=1732, help="validation reviews replied to (1,732 = all)")
    p.add_argument("--eval-batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def run(data: Path, out: Path, cfg: Any, **train: Any) -> Path:
    """Train into ``out`` unless it already holds its last checkpoint."""
    from minigpt.training import checkpoint, runs
    from minigpt.training.config import TrainConfig
    from minigpt.training.loop import train as train_run

    steps = train["max_steps"]
    if checkpoint.latest_step(runs.checkpoint_dir(out)) == steps:
        return out
    base = dict(data=str(data), out=str(out), progress=False, eval_interval=max(steps // 4, 1), ckpt_interval=steps)
    train_run(cfg, TrainConfig(**{**base, **train}), log=lambda s: print(f"  {s}", flush=True))
    return out


def main() -> None:
    args = parse_args()
    configure_cpu()  # what the minigpt CLI does before JAX starts (minigpt.training.hostmem)

    from minigpt.config import GPTConfig
    from minigpt.data import replies as reply_data
    from minigpt.data.prepared import load_meta, prepare
    from minigpt.training.init_from import read_source, transfer
    from minigpt.training.runs import load_run
    from minigpt.training.step import init_params

    work, times = Path(args.work), {}
    t0 = time.perf_counter()
    if not (work / "reviews" / "meta.json").is_file():
        prepare("reviews", work / "reviews")
    if not (work / "replies" / "meta.json").is_file():
        reply_data.prepare(work / "replies", base=work / "reviews")
    times["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    vocab = load_meta(work / "reviews")["vocab_size"]
    pre = Path(args.pretrained_run) if args.pretrained_run else work / "pretrained"
    if not args.pretrained_run:
        cfg = GPTConfig.preset("baby", vocab_size=vocab, block_size=128)
        run(work / "reviews", pre, cfg, max_steps=args.pretrain_steps, batch_size=16, seed=args.seed)
    times["pretrain"] = time.perf_counter() - t0

    chat_vocab = load_meta(work / "replies")["vocab_size"]
    chat_cfg = read_source(pre).cfg.replace(vocab_size=chat_vocab)
    common = dict(batch_size=16, seed=args.seed, lr=1e-3, min_lr=1e-4, warmup_steps=20)
    t0 = time.perf_counter()
    sft = run(work / "replies", work / "sft", chat_cfg, task="sft", init_from=str(pre), max_steps=args.sft_steps,
              **common)  # fmt: skip
    times["sft"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dpo = run(work / "replies", work / "dpo", chat_cfg, task="dpo", init_from=str(sft), max_steps=args.dpo_steps,
              beta=args.beta, **{**common, "batch_size": 8, "lr": args.dpo_lr, "min_lr": args.dpo_lr / 10})  # fmt: skip
    times["dpo"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    lora = run(work / "replies", work / "lora", chat_cfg, task="sft", init_from=str(pre), max_steps=args.sft_steps,
               lora_rank=8, lora_targets="c_attn,c_proj,c_fc", **{**common, "lr": 3e-3, "min_lr": 3e-4})  # fmt: skip
    times["lora"] = time.perf_counter() - t0

    pre_cfg, pre_params, _ = load_run(pre)
    template = transfer(pre_params, init_params(chat_cfg, args.seed), pre_cfg)  # no tuning: fresh chat-token rows
    models = {
        "pretrained + chat template (no tuning)": template,
        "SFT": load_run(sft)[1],
        "SFT + DPO": load_run(dpo)[1],
        "SFT with LoRA (r = 8)": load_run(lora)[1],
    }
    tok = load_run(sft)[2]
    records = reply_data.load_records(work / "replies", "val")[: args.eval_n]
    t0 = time.perf_counter()
    results, logps, dumps = {}, {}, []
    for name, params in models.items():
        t1 = time.perf_counter()
        scores, replies, logps[name] = evaluate(chat_cfg, params, tok, records, args.eval_batch)
        results[name] = scores
        dumps += [{"model": name, **r} for r in replies]
        print(f"  {name}: {time.perf_counter() - t1:.0f} s", flush=True)
    ref_c, ref_r = logps["SFT"]
    pol_c, pol_r = logps["SFT + DPO"]
    results["SFT + DPO"]["dpo_reward_accuracy"] = float(np.mean((pol_c - ref_c) - (pol_r - ref_r) > 0))
    times["evaluate"] = time.perf_counter() - t0

    (work / "results.json").write_text(json.dumps({"results": results, "seconds": times, "args": vars(args)},
                                                  ensure_ascii=False, indent=1), encoding="utf-8")  # fmt: skip
    with (work / "replies.jsonl").open("w", encoding="utf-8") as f:
        for d in dumps:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    print(f"\n{len(records):,} held-out reviews; goals: format ≥ {GOALS['format']}, sentiment ≥ {GOALS['sentiment']}, "
          f"aspect recall ≥ {GOALS['aspect_recall']}, DPO ahead of SFT on sentiment")  # fmt: skip
    print("| model | format | sentiment-appropriate | aspect recall | pair accuracy | DPO reward accuracy |")
    print("|---|---|---|---|---|---|")
    for name, s in results.items():
        dra = f"{s['dpo_reward_accuracy']:.3f}" if "dpo_reward_accuracy" in s else "–"
        print(f"| {name} | {s['format']:.3f} | {s['sentiment']:.3f} | {s['aspect_recall']:.3f} | "
              f"{s['pair_accuracy']:.3f} | {dra} |")  # fmt: skip
    print("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))


def evaluate(cfg: Any, params: Any, tok: Any, records: list[dict], batch: int) -> tuple[dict, list[dict], tuple]:
    """Greedy replies to every record's review, the judge's scores, and log π of each held-out pair."""
    import jax

    from minigpt.generate import generate
    from minigpt.model import apply, jax_params, sequence_logprobs
    from minigpt.tokenizers import END, render_chat
    from minigpt.training.chat_inputs import pair_batch

    end = tok.special_tokens[END]
    prompts = [render_chat([{"role": "user", "content": r["shown"]}], tok, add_generation_prompt=True) for r in records]
    groups = [list(range(i, len(records), -(-len(records) // batch))) for i in range(-(-len(records) // batch))]
    out: dict[int, list[int]] = {}
    for rows in groups:  # round-robin groups: each holds some of the longest prompts, so few distinct shapes compile
        new = generate(params, [prompts[i] for i in rows], cfg, max_new_tokens=BUDGET, temperature=0.0,
                       stop_tokens=[end], backend="jax")  # fmt: skip
        out.update(zip(rows, new, strict=True))
    replies, fmt, sent, hit, total = [], 0, 0, 0, 0
    for i, r in enumerate(records):
        ids = out[i]
        ended = end in ids
        text = tok.decode(ids[: ids.index(end)] if ended else ids)
        ok = judge_sentiment(text, r["label"])
        found = [a for a in r["aspects"] if a in text]
        fmt, sent = fmt + ended, sent + ok
        hit, total = hit + len(found), total + len(r["aspects"])
        replies.append({"review": r["shown"], "label": r["label"], "aspects": r["aspects"], "reply": text,
                        "ended": ended, "sentiment_ok": ok, "aspects_found": found})  # fmt: skip
    p = jax_params(params)
    fn = jax.jit(lambda p, x, y: sequence_logprobs(apply(p, x, cfg), y))
    pairs = reply_data_pairs(records, tok, cfg.block_size)
    chosen, rejected = np.zeros(len(pairs)), np.zeros(len(pairs))
    for s in range(0, len(pairs), 64):
        chunk = pairs[s : s + 64]
        chunk = chunk + chunk[:1] * (64 - len(chunk))
        x, y = pair_batch(chunk, cfg.block_size)
        lp = np.asarray(fn(p, x, y))
        n = min(64, len(pairs) - s)
        chosen[s : s + n], rejected[s : s + n] = lp[:n], lp[64 : 64 + n]
    scores = {"format": fmt / len(records), "sentiment": sent / len(records), "aspect_recall": hit / max(total, 1),
              "pair_accuracy": float(np.mean(chosen > rejected)), "n": len(records)}  # fmt: skip
    return scores, replies, (chosen, rejected)


def reply_data_pairs(records: list[dict], tok: Any, block_size: int) -> list:
    """Each record's (chosen, rejected) conversation as (ids, mask), cut to block_size + 1 tokens if longer."""
    from minigpt.data.replies import encode_examples

    chosen, rejected = encode_examples(records, tok, "chosen"), encode_examples(records, tok, "rejected")
    cut = block_size + 1
    return [((c[0][:cut], c[1][:cut]), (r[0][:cut], r[1][:cut])) for c, r in zip(chosen, rejected, strict=True)]


if __name__ == "__main__":
    main()

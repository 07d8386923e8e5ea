"""What a chat run reads (``--task sft`` / ``--task dpo``): the examples of ``minigpt prepare review-replies``,
rendered in the chat format, and their deterministic batches.

SFT batch k: B examples drawn by ``default_rng([seed, k])``, each right-padded to block_size + 1 tokens, turned
into (inputs, targets) by ``reference.sft.sft_targets``: targets are the reply tokens (and their ``<|end|>``),
every prompt and padding position is ``IGNORE`` — the step's masked token mean is then the SFT loss.
DPO batch k: B pairs; x stacks the B chosen conversations over the B rejected ones (2B, T), y is (targets
(2B, T), the reference model's log-probs of each row (2B,)), computed once before training (``dpo``).
Examples longer than block_size + 1 tokens are left out, and counted in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from minigpt.config import GPTConfig
from minigpt.data import replies as reply_data
from minigpt.reference.sft import sft_targets
from minigpt.tokenizers import load_tokenizer
from minigpt.training.config import TrainConfig

IGNORE = -1
VAL_SEED = 1_234_567
Example = tuple[list[int], list[bool]]


def load_chat(cfg: GPTConfig, tcfg: TrainConfig, log: Callable[[str], None] = print) -> dict[str, list[Any]]:
    """split → encoded examples (SFT: (ids, mask); DPO: ((ids, mask) chosen, (ids, mask) rejected)) that fit."""
    if not reply_data.is_chat_data(tcfg.data):
        raise ValueError(
            f"--task {tcfg.task} needs chat data; {tcfg.data} is not one: make it with "
            f"'minigpt prepare review-replies --out DIR' and pass --data DIR"
        )
    tok = load_tokenizer(f"{tcfg.data}/tokenizer")
    if tok.vocab_size != cfg.vocab_size:
        raise ValueError(f"the data's tokenizer has {tok.vocab_size} ids but the model {cfg.vocab_size}")
    out: dict[str, list[Any]] = {}
    limit = cfg.block_size + 1
    for split in reply_data.SPLITS:
        records = reply_data.load_records(tcfg.data, split)
        chosen = reply_data.encode_examples(records, tok, "chosen")
        if tcfg.task == "dpo":
            rejected = reply_data.encode_examples(records, tok, "rejected")
            items = [(c, r) for c, r in zip(chosen, rejected, strict=True) if max(len(c[0]), len(r[0])) <= limit]
        else:
            items = [c for c in chosen if len(c[0]) <= limit]
        if len(items) < len(records):
            log(f"{split}: {len(records) - len(items)} of {len(records)} examples are longer than block_size + 1 = "
                f"{limit} tokens and are left out")  # fmt: skip
        if not items:
            raise ValueError(f"no {split} example fits in block_size + 1 = {limit} tokens; use a larger block_size "
                             "or prepare with a smaller --max-review-chars")  # fmt: skip
        out[split] = items
    if len(out["train"]) < tcfg.batch_size:
        raise ValueError(f"batch_size={tcfg.batch_size} exceeds the {len(out['train'])} train examples")
    return out


def pad_examples(examples: list[Example], length: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask), each (n, length): right-padded with id 0 and mask False."""
    ids = np.zeros((len(examples), length), dtype=np.int32)
    mask = np.zeros((len(examples), length), dtype=bool)
    for i, (e_ids, e_mask) in enumerate(examples):
        ids[i, : len(e_ids)], mask[i, : len(e_mask)] = e_ids, e_mask
    return ids, mask


class ChatSampler:
    """SFT batches: batch(k) → (x, y), int32 (B, T), targets masked to the reply tokens."""

    def __init__(self, examples: list[Example], block_size: int, batch_size: int, seed: int) -> None:
        self.examples, self.block_size, self.batch_size, self.seed = examples, block_size, batch_size, seed

    def rows(self, step: int) -> np.ndarray:
        return np.random.default_rng([self.seed, step]).integers(0, len(self.examples), size=self.batch_size)

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        ids, mask = pad_examples([self.examples[i] for i in self.rows(step)], self.block_size + 1)
        return sft_targets(ids, mask, IGNORE)


class PairSampler(ChatSampler):
    """DPO batches: batch(k) → (x (2B, T), (targets (2B, T), reference log-probs (2B,))): chosen rows first."""

    def __init__(self, pairs: list[tuple[Example, Example]], ref_logps: np.ndarray | None, block_size: int,
                 batch_size: int, seed: int) -> None:  # fmt: skip
        super().__init__(pairs, block_size, batch_size, seed)
        self.ref_logps = ref_logps  # (n, 2): chosen, rejected; NaN for pairs never sampled

    def batch(self, step: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        rows = self.rows(step)
        if self.ref_logps is None or np.isnan(self.ref_logps[rows]).any():
            raise ValueError(f"batch {step} holds pairs without reference log-probs; compute them first (dpo)")
        x, y = pair_batch([self.examples[i] for i in rows], self.block_size)
        return x, (y, np.concatenate([self.ref_logps[rows, 0], self.ref_logps[rows, 1]]).astype(np.float32))


def pair_batch(pairs: list[tuple[Example, Example]], block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, targets), (2B, T): the chosen conversations, then the rejected ones."""
    ids, mask = pad_examples([c for c, _ in pairs] + [r for _, r in pairs], block_size + 1)
    return sft_targets(ids, mask, IGNORE)

"""``minigpt.testing.model_checkers`` was split: the head checkers are in ``minigpt.testing.checks.multi_head`` and
the sequence log-likelihood's in ``minigpt.testing.checks.forward_and_loss``; kept for old imports."""

from minigpt.testing.checks.forward_and_loss import check_sequence_log_likelihood
from minigpt.testing.checks.multi_head import check_merge_heads, check_split_heads

__all__ = ["check_merge_heads", "check_sequence_log_likelihood", "check_split_heads"]

"""minigpt.testing — hypothesis strategies and checkers for tests and course assignments."""

from minigpt.testing import strategies

__all__ = ["strategies"]

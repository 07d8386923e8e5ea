"""``minigpt.testing.llama_checkers`` moved to ``minigpt.testing.checks.llama``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import llama

sys.modules[__name__] = llama

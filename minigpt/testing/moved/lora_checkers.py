"""``minigpt.testing.lora_checkers`` moved to ``minigpt.testing.checks.lora``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import lora

sys.modules[__name__] = lora

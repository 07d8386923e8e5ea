"""``minigpt.checkpoint`` moved to ``minigpt.training.checkpoint``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.training import checkpoint

sys.modules[__name__] = checkpoint

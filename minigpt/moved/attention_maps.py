"""``minigpt.attention_maps`` moved to ``minigpt.viz.attention``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.viz import attention

sys.modules[__name__] = attention

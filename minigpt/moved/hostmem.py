"""``minigpt.hostmem`` moved to ``minigpt.training.hostmem``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.training import hostmem

sys.modules[__name__] = hostmem

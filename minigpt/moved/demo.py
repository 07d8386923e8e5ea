"""``minigpt.demo`` moved to ``minigpt.commands.demo``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.commands import demo

sys.modules[__name__] = demo

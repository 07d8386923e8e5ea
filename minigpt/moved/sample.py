"""``minigpt.sample`` moved to ``minigpt.commands.sample``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.commands import sample

sys.modules[__name__] = sample

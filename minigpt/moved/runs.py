"""``minigpt.runs`` moved to ``minigpt.training.runs``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.training import runs

sys.modules[__name__] = runs

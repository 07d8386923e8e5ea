"""``minigpt.testing.timelimit`` moved to ``minigpt.testing.grader.timelimit``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.grader import timelimit

sys.modules[__name__] = timelimit

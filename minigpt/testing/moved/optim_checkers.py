"""``minigpt.testing.optim_checkers`` moved to ``minigpt.testing.checks.training``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import training

sys.modules[__name__] = training

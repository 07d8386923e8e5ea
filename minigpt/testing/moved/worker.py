"""``minigpt.testing.worker`` moved to ``minigpt.testing.grader.worker``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.grader import worker

sys.modules[__name__] = worker

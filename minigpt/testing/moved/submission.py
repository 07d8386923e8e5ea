"""``minigpt.testing.submission`` moved to ``minigpt.testing.grader.submission``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.grader import submission

sys.modules[__name__] = submission

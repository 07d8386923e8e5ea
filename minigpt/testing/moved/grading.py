"""``minigpt.testing.grading`` moved to ``minigpt.testing.grader.grading``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.grader import grading

sys.modules[__name__] = grading

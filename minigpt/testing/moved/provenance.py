"""``minigpt.testing.provenance`` moved to ``minigpt.testing.grader.provenance``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.grader import provenance

sys.modules[__name__] = provenance

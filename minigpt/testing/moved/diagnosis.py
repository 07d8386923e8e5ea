"""``minigpt.testing.diagnosis`` moved to ``minigpt.testing.checks.diagnosis``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import diagnosis

sys.modules[__name__] = diagnosis

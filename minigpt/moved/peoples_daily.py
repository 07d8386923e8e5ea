"""``minigpt.peoples_daily`` moved to ``minigpt.data.peoples_daily``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.data import peoples_daily

sys.modules[__name__] = peoples_daily

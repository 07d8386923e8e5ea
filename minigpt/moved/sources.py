"""``minigpt.sources`` moved to ``minigpt.data.sources``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.data import sources

sys.modules[__name__] = sources

"""``minigpt.corpus`` moved to ``minigpt.data.corpus``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.data import corpus

sys.modules[__name__] = corpus

"""``minigpt.testing.decoding_checkers`` moved to ``minigpt.testing.checks.decoding``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import decoding

sys.modules[__name__] = decoding

"""``minigpt.testing.app_checkers`` moved to ``minigpt.testing.checks.ecommerce``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import ecommerce

sys.modules[__name__] = ecommerce

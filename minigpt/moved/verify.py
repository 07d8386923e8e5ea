"""``minigpt.verify`` moved to ``minigpt.commands.verify``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.commands import verify

sys.modules[__name__] = verify

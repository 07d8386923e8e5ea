"""``minigpt.testing.grade_cli`` moved to ``minigpt.commands.grade``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.commands import grade

sys.modules[__name__] = grade

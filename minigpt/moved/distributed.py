"""``minigpt.distributed`` moved to ``minigpt.training.distributed``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.training import distributed

sys.modules[__name__] = distributed

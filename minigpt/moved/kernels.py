"""``minigpt.kernels`` moved to ``minigpt.model.kernels``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.model import kernels

sys.modules[__name__] = kernels

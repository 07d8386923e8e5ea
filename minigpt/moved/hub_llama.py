"""``minigpt.hub_llama`` moved to ``minigpt.hub.llama``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.hub import llama

sys.modules[__name__] = llama

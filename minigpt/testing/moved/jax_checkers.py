"""``minigpt.testing.jax_checkers`` moved to ``minigpt.testing.checks.jax_twin``.

The old name is the same module object, kept for old imports.
"""

import sys

from minigpt.testing.checks import jax_twin

sys.modules[__name__] = jax_twin

"""minigpt.testing — hypothesis strategies, lesson checkers, graded assignments and ``minigpt grade``.

    strategies    hypothesis strategies for configs, params and token ids (tests and checkers)
    checks/       one checker module per lesson; ``checkers`` re-exports every ``check_*``
    assignments/  the graded exercises of notebooks/exercises/, one module per lesson
    grader/       ``Assignment``, running a submission in a worker process, the reports
    context       the grading context the checks read (seed per student, how much to reveal)

The modules' old names (``minigpt.testing.grading``, ``model_checkers``, …) still import: see ``moved/``.
"""

import os

from minigpt.testing import strategies

# Old module names, e.g. minigpt.testing.grading, resolve to their new homes (minigpt/testing/moved/).
__path__.append(os.path.join(os.path.dirname(__file__), "moved"))

__all__ = ["strategies"]

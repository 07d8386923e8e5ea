"""minigpt.testing — hypothesis strategies and checkers for tests and course assignments, and ``minigpt grade``.

``checkers`` (and the per-lesson ``*_checkers`` modules) diagnose a student's function; ``grading`` declares
graded tasks; ``runner.grade`` scores a submission in its own process; ``reports`` writes text, JSON and
Gradescope's results.json; ``assignments`` holds the graded exercises of notebooks/exercises/.
"""

from minigpt.testing import strategies

__all__ = ["strategies"]

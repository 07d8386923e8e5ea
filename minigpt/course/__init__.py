"""The course as students and instructors receive it.

``markers``: one source notebook per exercise, solution and hidden-test regions marked nbgrader-style;
``assign``: the student notebook generated from it, verified with the grader before it is written;
``gradescope``: the autograder package for Gradescope, and ``autograder`` what its ``run_autograder`` runs;
``selfcheck``: the graded checks run inside a source notebook; ``book``: the static site of the lessons.
Nothing here is imported by ``import minigpt``.
"""

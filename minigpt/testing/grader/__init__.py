"""``minigpt grade``'s machinery: an assignment's graded tasks, the submission, the worker process, the score.

grading      ``Assignment``: graded tasks, each a student function with checks worth points; scoring one task
submission   reading a notebook or .py submission into code cells
runner       ``grade``: runs the submission in a worker, scores it here
session      the grader's side of the worker: start it, ask it, kill it and all it started; ``RemoteFunction``
worker       the worker: runs the student's cells and answers calls of their functions, decides nothing
wire         what crosses the pipe: JSON and ``.npy`` bytes, never pickle
static       the grader's own look at the submission's source for forbidden imports
provenance   the worker's look at the live functions: did the student's code call the reference?
timelimit    per-cell and per-call time limits
reports      text, JSON and Gradescope's results.json
"""

"""``minigpt grade``'s machinery: an assignment's graded tasks, the submission, the worker process, the score.

grading      ``Assignment``: graded tasks, each a student function with checks worth points
submission   reading a notebook or .py submission into code cells
runner       ``grade``: runs the submission in a worker process under time and output limits
worker       the worker: executes the student's cells, then the checks
provenance   did the student's code compute the answer, or call the reference?
timelimit    per-check time limits
reports      text, JSON and Gradescope's results.json
"""

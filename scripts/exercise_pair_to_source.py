"""Turn an old exercise pair (student notebook + solution notebook) into one source notebook with markers.

    python scripts/exercise_pair_to_source.py notebooks/exercises/NN_x.ipynb notebooks/exercises/solutions/NN_x.ipynb

rewrites the solution notebook as the source (``minigpt.course.markers``): each ``exercise`` cell's solution
between ``### BEGIN SOLUTION: <the student's TODO hint>`` and ``### END SOLUTION``; each self-check cell after
it gains a hidden ``check_graded(NAME, function)`` call, the import cell its import. Then regenerate the student
notebook with ``minigpt assign SOURCE --out notebooks/exercises``. Used once for exercises 01–10.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

from minigpt.course.markers import BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION, dumps


def text(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def convert(student_path: Path, solution_path: Path) -> None:
    student, solution = (json.loads(p.read_text(encoding="utf-8")) for p in (student_path, solution_path))
    name = solution["metadata"]["minigpt"]["assignment"]
    imported = False
    for i, (s, t) in enumerate(zip(student["cells"], solution["cells"], strict=True)):
        tags = t.get("metadata", {}).get("tags", [])
        if t["cell_type"] != "code":
            continue
        if not imported and "exercise" not in tags:
            t["source"] = text(t) + f"\n{BEGIN_HIDDEN}\nfrom minigpt.course.selfcheck import check_graded\n{END_HIDDEN}"
            imported = True
        elif "exercise" in tags:
            stub, sol = text(s).splitlines(), text(t).splitlines()
            head = 0
            while head < len(stub) and stub[head] == sol[head]:
                head += 1
            (raise_line,) = stub[head:]
            hint = ast.literal_eval(raise_line.strip()[len("raise NotImplementedError(") : -1]).removeprefix("TODO: ")
            indent = raise_line[: len(raise_line) - len(raise_line.lstrip())]
            lines = [*sol[:head], f"{indent}{BEGIN_SOLUTION}: {hint}", *sol[head:], f"{indent}{END_SOLUTION}"]
            t["source"] = "\n".join(lines)
            function = sol[0].split("(")[0].removeprefix("def ")
            check = solution["cells"][i + 1]
            lines = text(check).splitlines()
            at = next((j for j, line in enumerate(lines) if line.startswith("print(")), len(lines))
            lines[at:at] = [BEGIN_HIDDEN, f'check_graded("{name}", {function})', END_HIDDEN]
            check["source"] = "\n".join(lines)
    solution_path.write_text(dumps(solution), encoding="utf-8")


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))

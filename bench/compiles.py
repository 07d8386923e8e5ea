"""Count the XLA programs one ``minigpt`` command compiles: ``python bench/compiles.py sample RUN --prompt P ...``.

Runs the command in this process with a JAX monitoring listener and prints each program's name, how often it was
compiled and the seconds spent (a program served by the persistent cache still counts: the event marks every
program handed to XLA). A name compiled more than once is the same function at another shape: a candidate for
bucketing. Set MINIGPT_COMPILATION_CACHE=off to see the compile times themselves.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict

from jax import monitoring

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def main(argv: list[str]) -> int:
    counts: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)

    def listen(event: str, duration: float, **kwargs) -> None:
        if event == COMPILE_EVENT:
            name = str(kwargs.get("fun_name"))
            counts[name] += 1
            seconds[name] += duration

    monitoring.register_event_duration_secs_listener(listen)
    from minigpt.cli import main as cli_main

    rc = cli_main(argv)
    print(f"\n{sum(counts.values())} compilations, {len(counts)} programs, {sum(seconds.values()):.1f} s:")
    for name, n in counts.most_common():
        print(f"  {n:3d} × {name:<40} {seconds[name]:6.2f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

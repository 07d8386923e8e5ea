"""The worker: the only process that runs the student's code. It decides nothing about points.

Started by ``minigpt.testing.grader.session`` as ``python -m minigpt.testing.grader.worker``, it bounds its own
memory, loads the assignment (for the reference stand-ins only), then answers the grader's requests, one JSON
message at a time over two pipes (``minigpt.testing.grader.wire``):

    exec   run one cell or statement under a time limit          → ok | error | timeout, with a message
    task   prepare a task: is the function defined, is it the    → what provenance saw
           student's own code; put the reference in for the
           other tasks' functions
    call   call the task's function (optionally under jax.jit)   → its value, or what it raised, and the calls
           on the arguments the grader sent                          into the reference the watcher saw
    quit

While a call runs, an argument that was a function in the grader (a model's ``logits_fn``) is a stub here that
asks the grader to compute it. Whatever this process answers is evidence the grader weighs; a missing or
garbled answer costs the student the task, never the reverse.
"""

from __future__ import annotations

import argparse
import builtins
import os
import resource
import sys
import traceback
from collections.abc import Callable
from typing import Any

from minigpt.testing.assignments import load_assignment
from minigpt.testing.grader import provenance, wire
from minigpt.testing.grader.grading import stand_in
from minigpt.testing.grader.timelimit import TimeLimitExceeded, time_limit

_TEXT = 2000  # characters of an exception's message sent back


def short_traceback(e: BaseException) -> str:
    """``Type: message (line N)``, the line being the deepest one in the submission."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if provenance.is_submission_code(f.filename)]
    where = f" (line {frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {str(e)[:_TEXT]}{where}"


def limit_memory(megabytes: int) -> None:
    """Cap this process's address space, soft and hard limit alike, so the student's code cannot raise it again."""
    if megabytes > 0:
        size = megabytes * 2**20
        try:
            resource.setrlimit(resource.RLIMIT_AS, (size, size))
        except (ValueError, OSError):  # a platform without an address-space limit (macOS): the time limits remain
            pass


class Worker:
    def __init__(self, assignment_spec: str, requests: int, replies: int):
        self.assignment = load_assignment(assignment_spec)
        self.references = {t.function: t.reference for t in self.assignment.tasks if t.reference is not None}
        self.requests, self.replies = requests, replies
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.saved: dict[str, Any] = {}  # the student's own values under the names a stand-in now holds
        self.absent: set[str] = set()  # names a stand-in holds that the submission never defined
        self.jitted: dict[tuple, Callable] = {}

    # -- the requests ------------------------------------------------------------------------------------------

    def exec_unit(self, source: str, filename: str, label: str, timeout: float) -> dict[str, Any]:
        try:
            code = compile(source, filename, "exec")
            with time_limit(timeout):
                exec(code, self.namespace)  # noqa: S102 - running the submission is the point, in its own process
        except TimeLimitExceeded:
            return {"status": "timeout", "message": f"{label} was stopped after {timeout:g} s (an endless loop?)"}
        except BaseException as e:  # noqa: BLE001 - SystemExit and friends from a submission are its errors too
            return {"status": "error", "message": f"{label} raised {short_traceback(e)}", "error": short_traceback(e)}
        return {"status": "ok", "message": ""}

    def restore(self) -> None:
        """Put back what the student defined under the names the stand-ins held, and remove the rest."""
        self.namespace.update(self.saved)
        for name in self.absent:
            self.namespace.pop(name, None)
        self.saved, self.absent = {}, set()

    def task(self, function: str) -> dict[str, Any]:
        self.restore()
        self.jitted.clear()
        fn = self.namespace.get(function)
        answer: dict[str, Any] = {"defined": fn is not None, "own": None, "uses": []}
        if fn is None:
            return answer
        others = {name: ref for name, ref in self.references.items() if name != function}
        answer["own"] = provenance.not_own_code(function, fn)
        if answer["own"] is None:
            answer["uses"] = provenance.static_uses(fn, allow=self.assignment.allow, skip=others)
        self.saved = {name: self.namespace[name] for name in others if name in self.namespace}
        self.absent = {name for name in others if name not in self.namespace}
        self.namespace.update({name: stand_in(ref) for name, ref in others.items()})
        return answer

    def function(self, name: str, jit: dict[str, Any] | None) -> Callable:
        fn = self.namespace[name]
        if jit is None:
            return fn
        key = (name, tuple(jit.get("static_argnums", ())))
        if key not in self.jitted:
            import jax  # only lesson 05's checks compile the student's function

            self.jitted[key] = jax.jit(fn, static_argnums=key[1])
        return self.jitted[key]

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        jit = request.get("jit")
        try:
            args = wire.decode(request["args"], self.stub)
            kwargs = wire.decode(request["kwargs"], self.stub)
        except wire.WireError as e:
            return {"raised": {"type": "WireError", "message": str(e)}}
        x64 = _x64(bool(request.get("x64")))
        try:
            with x64, provenance.watch_calls(allow=self.assignment.allow) as calls, time_limit(request["timeout"]):
                value = self.function(request["function"], jit)(*args, **kwargs)
                encoded = wire.encode(value)
        except TimeLimitExceeded:
            return {"timeout": True}
        except wire.WireError as e:
            return {"raised": {"type": "TypeError", "message": f"your function returned {e}"}}
        except BaseException as e:  # noqa: BLE001 - whatever the student's function raised is its answer
            return {"raised": {"type": type(e).__name__, "message": str(e)[:_TEXT], "where": short_traceback(e)}}
        return {"value": encoded, "calls": sorted(set(calls)), "intact": calls.intact}

    def stub(self, handle: int) -> Callable[..., Any]:
        """A function that asks the grader to compute its callable ``handle`` (a model, say) on these arguments."""

        def remote(*args: Any, **kwargs: Any) -> Any:
            wire.send(self.replies, {"op": "callback", "handle": handle, "args": wire.encode(list(args)),
                                     "kwargs": wire.encode(kwargs)})  # fmt: skip
            answer = wire.receive(self.requests)
            if answer is None:
                raise SystemExit(0)  # the grader is gone
            if "raised" in answer:
                raise RuntimeError(f"the grader's function raised {answer['raised']}")
            return wire.decode(answer.get("value"))

        return remote

    # -- the loop ----------------------------------------------------------------------------------------------

    def serve(self) -> None:
        wire.send(self.replies, {"ready": True})
        while True:
            request = wire.receive(self.requests)
            if request is None or request.get("op") == "quit":
                return
            op = request.get("op")
            if op == "exec":
                answer = self.exec_unit(request["source"], request["filename"], request["label"], request["timeout"])
            elif op == "task":
                answer = self.task(request["function"])
            elif op == "call":
                answer = self.call(request)
            else:
                answer = {"raised": {"type": "ValueError", "message": f"unknown request {op!r}"}}
            wire.send(self.replies, {"re": request.get("id"), **answer})


def _x64(enabled: bool):
    if not enabled:
        import contextlib

        return contextlib.nullcontext()
    import jax

    return jax.enable_x64(True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m minigpt.testing.grader.worker")
    p.add_argument("--assignment", required=True)
    p.add_argument("--requests", type=int, required=True, help="file descriptor the grader writes requests to")
    p.add_argument("--replies", type=int, required=True, help="file descriptor this worker answers on")
    p.add_argument("--memory-mb", type=int, default=0)
    args = p.parse_args(argv)
    limit_memory(args.memory_mb)
    os.set_inheritable(args.requests, False)  # a process the submission starts does not get the grader's pipes
    os.set_inheritable(args.replies, False)
    Worker(args.assignment, args.requests, args.replies).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The grader's side of the worker: start it, ask it things, and make sure nothing it started outlives grading.

``Session`` starts ``python -m minigpt.testing.grader.worker`` in a new session (its own process group), with a
memory limit it sets on itself and two pipes for requests and replies; its stdout and stderr are drained into a
bounded tail. ``RemoteFunction`` is the student's function as the checkers see it: a callable whose calls the
worker answers. Each request waits at most its time limit plus ``GRACE`` seconds; a worker that does not answer
by then, answers garbage or dies is stopped, and the grader scores what is left as not run.

``close`` kills the worker's process group and every process that still carries this session's token in its
environment (a child that started its own session keeps the token), and, when the grader is a child subreaper
(``minigpt grade`` makes itself one), every orphan that was re-parented to it.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import minigpt
from minigpt.testing.grader import wire
from minigpt.testing.grader.timelimit import TimeLimitExceeded

GRACE = 10.0  # seconds a worker gets past a request's own limit before it is stopped
TOKEN_VARIABLE = "MINIGPT_GRADE_TOKEN"
OUTPUT_TAIL = 64 * 1024  # bytes of the worker's output kept (the rest is read and dropped)
_PR_SET_CHILD_SUBREAPER = 36


class WorkerStopped(RuntimeError):
    """The worker can no longer answer: it exited, ran past its limit or answered something unreadable."""


class StudentError(Exception):
    """What the student's function raised in the worker, re-raised here under the same type name."""


_ERROR_TYPES: dict[str, type[StudentError]] = {}


def _student_error(kind: Any, message: Any) -> StudentError:
    # one class per name: hypothesis tells failures apart by their exception's type, and a replay must match
    name = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) < 80 else "Exception"
    if name not in _ERROR_TYPES:
        _ERROR_TYPES[name] = type(name, (StudentError,), {})
    return _ERROR_TYPES[name](str(message))


def set_subreaper(on: bool) -> bool:
    """Make this process adopt its orphaned descendants, or stop doing so (Linux); False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _is_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        return libc.prctl(37, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value == 1  # PR_GET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _processes() -> list[tuple[int, int]]:
    """(pid, parent pid) of every process this user can see."""
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                found.append((int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _carries(pid: int, token: bytes) -> bool:
    try:
        return token in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


class Session:
    """One worker for one submission and assignment."""

    def __init__(self, assignment_spec: str, *, cwd: Path, memory_mb: int = 4096):
        self.token = secrets.token_hex(16)
        # while grading, orphans of the worker's descendants are re-parented here, where close() finds them
        self._was_reaper = _is_subreaper()
        self._reaper = self._was_reaper or set_subreaper(True)
        self._children_before = {pid for pid, parent in _processes() if parent == os.getpid()}
        requests_r, self._requests = os.pipe()
        self._replies, replies_w = os.pipe()
        env = dict(os.environ)
        root = str(Path(minigpt.__file__).resolve().parents[1])  # the worker imports this very minigpt
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
        env.setdefault("MPLBACKEND", "Agg")
        env[TOKEN_VARIABLE] = self.token
        command = [sys.executable, "-m", "minigpt.testing.grader.worker", "--assignment", assignment_spec]
        command += ["--requests", str(requests_r), "--replies", str(replies_w), "--memory-mb", str(memory_mb)]
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(requests_r, replies_w),
            start_new_session=True,
        )
        os.close(requests_r)
        os.close(replies_w)
        self._tail = bytearray()
        self._drain = threading.Thread(target=self._drain_output, daemon=True)
        self._drain.start()
        self._next_id = 0
        self._callbacks: dict[int, Callable[..., Any]] = {}
        self.stopped = ""  # why the worker can no longer answer; "" while it can
        self.suspicious: list[str] = []  # forbidden calls or a removed watcher, reported by calls of this check

    # -- output ------------------------------------------------------------------------------------------------

    def _drain_output(self) -> None:
        stream = self.process.stdout
        while True:
            chunk = stream.read1(65536) if stream else b""
            if not chunk:
                return
            self._tail += chunk
            del self._tail[:-OUTPUT_TAIL]

    def output_tail(self, n: int = 1500) -> str:
        return bytes(self._tail[-n:]).decode("utf-8", "replace")

    # -- requests ----------------------------------------------------------------------------------------------

    def _stop(self, why: str) -> WorkerStopped:
        if not self.stopped:
            self.stopped = why
            self.close()
        return WorkerStopped(self.stopped)

    def _receive(self, deadline: float) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self._replies], [], [], left)[0]:
            raise self._stop(f"the grading process did not answer within {GRACE:g} s of its time limit")
        try:
            message = wire.receive(self._replies)
        except (wire.WireError, OSError) as e:
            raise self._stop(f"the grading process answered something unreadable ({e})") from None
        if message is None:
            try:
                why = f"the grading process exited with code {self.process.wait(timeout=5)}"
            except subprocess.TimeoutExpired:
                why = "the grading process closed its pipe to the grader"
            raise self._stop(why)
        return message

    def request(self, message: dict[str, Any], seconds: float) -> dict[str, Any]:
        """Send ``message`` and return the worker's answer to it, serving its callbacks meanwhile."""
        if self.stopped:
            raise WorkerStopped(self.stopped)
        self._next_id += 1
        deadline = time.monotonic() + seconds + GRACE
        try:
            wire.send(self._requests, {**message, "id": self._next_id})
        except OSError as e:
            raise self._stop(f"the grading process stopped reading ({e})") from None
        while True:
            answer = self._receive(deadline)
            if answer.get("op") == "callback":
                try:
                    self._serve_callback(answer)
                except OSError as e:
                    raise self._stop(f"the grading process stopped reading ({e})") from None
            elif answer.get("re") == self._next_id:
                return answer
            # anything else is a stray message the student's code wrote to the pipe: ignored

    def _serve_callback(self, message: dict[str, Any]) -> None:
        fn = self._callbacks.get(message.get("handle"))
        try:
            if fn is None:
                raise ValueError("no such function")
            value = fn(*wire.decode(message.get("args")), **wire.decode(message.get("kwargs")))
            reply = {"value": wire.encode(value)}
        except Exception as e:  # noqa: BLE001 - the student's arguments may be wrong; they hear why
            reply = {"raised": f"{type(e).__name__}: {e}"}
        wire.send(self._requests, reply)

    def handle(self, fn: Callable[..., Any]) -> int:
        self._callbacks[len(self._callbacks)] = fn
        return len(self._callbacks) - 1

    def wait_ready(self, seconds: float = 120.0) -> None:
        answer = self._receive(time.monotonic() + seconds)
        if not answer.get("ready"):
            raise self._stop("the grading process did not start")

    # -- the end -----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the worker and everything it started; idempotent."""
        if self.process.poll() is None:
            try:
                wire.send(self._requests, {"op": "quit"})
                self.process.wait(timeout=0.5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill_everything()
        if self.process.poll() is None:
            self.process.wait()
        for fd in (self._requests, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._drain.join(timeout=2)

    def _kill_everything(self) -> None:
        token = f"{TOKEN_VARIABLE}={self.token}".encode()
        me, worker = os.getpid(), self.process.pid
        for _ in range(50):  # again until a look after the worker's death finds nothing: a process may fork meanwhile
            table = _processes()
            children: dict[int, list[int]] = {}
            for pid, parent in table:
                children.setdefault(parent, []).append(pid)
            doomed, todo = set(), [worker]
            while todo:  # the worker's descendants, while they still hang under it
                for child in children.get(todo.pop(), []):
                    if child not in doomed:
                        doomed.add(child)
                        todo.append(child)
            doomed |= {pid for pid, _ in table if pid != me and _carries(pid, token)}
            if self._reaper:  # orphans re-parented to this process while it was a subreaper
                doomed |= {pid for pid in children.get(me, []) if pid not in self._children_before}
            doomed.discard(me)
            try:
                os.killpg(worker, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in doomed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            worker_dead = self.process.poll() is not None
            if not worker_dead:
                try:
                    self.process.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
            for pid in doomed - {worker}:  # reap the ones that were re-parented to us
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if worker_dead and not (doomed - {worker}):
                break
            time.sleep(0.02)
        if self._reaper and not self._was_reaper:
            set_subreaper(False)


class RemoteFunction:
    """The student's function ``name`` as the checkers call it: each call is answered by the worker.

    ``deadline`` (time.monotonic) bounds the whole check; a call past it raises ``TimeLimitExceeded``."""

    def __init__(self, session: Session, name: str, deadline: float, jit: dict[str, Any] | None = None):
        self.session, self.name, self.deadline, self.jit = session, name, deadline, jit
        self.x64 = jit is not None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeLimitExceeded("the check ran out of time")
        handle = self.session.handle
        try:
            request = {"op": "call", "function": self.name, "args": wire.encode(list(args), handle)}
            request.update(kwargs=wire.encode(kwargs, handle), timeout=left, jit=self.jit, x64=self.x64)
        except wire.WireError as e:
            raise TypeError(f"the grader cannot send this input to the worker: {e}") from None
        answer = self.session.request(request, left)
        if answer.get("timeout"):
            raise TimeLimitExceeded(f"stopped after {left:g} s")
        if "raised" in answer:
            raised = answer["raised"] if isinstance(answer["raised"], dict) else {}
            raise _student_error(raised.get("type"), raised.get("message", ""))
        calls, intact = answer.get("calls"), answer.get("intact")
        if not isinstance(calls, list) or intact is not True:
            self.session.suspicious.append("the grader's watch on your function's calls was switched off")
        elif calls:
            self.session.suspicious.extend(str(c) for c in calls)
        try:
            return wire.decode(answer.get("value"))
        except wire.WireError as e:
            raise TypeError(f"your function returned {e}") from None

    def under_jit(self, static_argnums: tuple[int, ...] = ()) -> RemoteFunction:
        """The same function compiled with ``jax.jit`` in the worker, called in 64-bit mode."""
        return RemoteFunction(self.session, self.name, self.deadline, {"static_argnums": list(static_argnums)})

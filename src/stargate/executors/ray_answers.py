"""Reading what Ray's Jobs API answers (a job's status, the node list) and writing a job's entrypoint: pure helpers
of the ``ray`` executor (:mod:`stargate.executors.ray_jobs`)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

import httpx

from stargate.executors.base import RunState, RunStatus
from stargate.executors.redact import credentials, redact

FAILED_NODE_WINDOW_S = 600.0
"""A node Ray reports dead by surprise counts as failed for this long after it died, seconds (Ray keeps dead nodes
in its list long after an autoscaler replaced them)."""
CARRIED = "STARGATE_ENV_"
"""Prefix of the runtime env variables that carry a job's process-start variables (see :func:`starts_processes`) to
its command: the entrypoint exports each under its own name and unsets the carrier."""
UNSTARTABLE = {
    "RUNTIME_ENV_SETUP_FAILURE",
    "JOB_SUPERVISOR_ACTOR_START_FAILURE",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
    "JOB_ENTRYPOINT_COMMAND_START_ERROR",
}
"""Ray's error types for a job whose command never started (the scheduler fails such a job as unstartable)."""
FINISHED = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
"""Ray's job statuses that never change again (only such a job can be deleted)."""
LOST = {"JOB_SUPERVISOR_ACTOR_DIED", "JOB_SUPERVISOR_ACTOR_START_TIMEOUT", "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"}
"""Ray's error types for a job Ray itself lost track of (its node died, or it never got a place in time)."""


def status_of(info: Mapping[str, Any]) -> RunStatus:
    """The run status a Ray JobDetails (as JSON) describes."""
    state = str(info.get("status", "")).upper()
    message = first_line(str(info.get("message") or ""))
    code = info.get("driver_exit_code")
    exit_code = shell_code(code) if isinstance(code, int) else None
    if state in ("PENDING", "RUNNING"):
        return RunStatus(RunState.RUNNING)
    if state == "SUCCEEDED":
        return RunStatus(RunState.SUCCEEDED, exit_code=0 if exit_code is None else exit_code)
    if state == "STOPPED":
        return RunStatus(RunState.CANCELLED, exit_code=exit_code, reason="stopped on Ray")
    error = str(info.get("error_type") or "")
    if state == "FAILED" and exit_code is None and error in UNSTARTABLE:
        return RunStatus(RunState.FAILED, reason=f"cannot start on Ray ({error}): {message}")
    if state == "FAILED" and exit_code is None and error in LOST:
        return RunStatus(RunState.LOST, reason=f"Ray lost the job ({error}): {message}")
    if state == "FAILED":
        return RunStatus(RunState.FAILED, exit_code=exit_code, reason=message or error or "failed on Ray")
    return RunStatus(RunState.LOST, reason=f"Ray reports an unknown job status {state!r}")


def count_nodes(nodes: list[Any], now_ms: float) -> tuple[int, int]:
    """(nodes alive, nodes failed) of Ray's node list: a dead node counts as failed when it died unexpectedly or
    was preempted within :data:`FAILED_NODE_WINDOW_S`; nodes that left on purpose (scaled down, idle) do not count."""
    alive = failed = 0
    for node in nodes:
        if not isinstance(node, Mapping):
            continue
        if node.get("state") == "ALIVE":
            alive += 1
            continue
        why = str(node.get("state_message") or "")
        if why.startswith(("Expected termination", "Terminated due to idle")):
            continue
        ended = node.get("end_time_ms")
        if isinstance(ended, int | float) and ended > 0 and now_ms - ended > FAILED_NODE_WINDOW_S * 1000:
            continue
        failed += 1
    return alive, failed


def starts_processes(name: str) -> bool:
    """Whether a variable changes how processes start (``PATH``, ``LD_*``, ``PYTHON*``, a shell's start file, where
    the C library loads code or locales from): Ray starts its own workers with its runtime env's variables, so a
    job's value there (a ``PATH`` without bash) keeps the job pending until Ray's start timeout, and would reach
    the processes outside the job's sandbox (Ray's workers, the UTF-8 relay). Such variables are set for the job's
    command only."""
    return name in _STARTS or name.startswith(("LD_", "DYLD_", "PYTHON"))


_STARTS = frozenset({"PATH", "BASH_ENV", "ENV", "SHELL", "IFS", "GCONV_PATH", "LOCPATH", "GLIBC_TUNABLES"})


def job_entrypoint(command: str, carried: list[str]) -> str:
    """The Ray entrypoint (run by ``/bin/sh -c``): ``command`` itself, or, when the job sets process-start variables,
    a prologue that exports each from its carrier (values never appear in the entrypoint, names are shell names)
    then runs ``command`` with ``exec /bin/sh -c`` (quoted: its metacharacters reach that shell only)."""
    if not carried:
        return command
    exports = " ".join(f'{name}="${CARRIED}{name}"' for name in carried)
    unset = " ".join(CARRIED + name for name in carried)
    return f"export {exports}; unset {unset}; exec /bin/sh -c -- {shlex.quote(command)}"


def shell_code(code: int) -> int:
    """A shell-style exit code: 128 + N for a command killed by signal N (Popen reports -N)."""
    return 128 - code if code < 0 else code


def brief(answer: httpx.Response) -> str:
    """An HTTP answer on one short line: ``HTTP 500: ValueError: ...`` (the last line of a Python traceback that
    says something: Ray ends some with a line of its own holding a lone '.'), without the credentials the request
    was sent with (an engine or a proxy that echoes the ``Authorization`` header)."""
    body = redact(answer.text, _sent(answer))
    lines = [line.strip() for line in body.splitlines() if any(c.isalnum() for c in line)]
    text = lines[-1] if lines else ""
    return f"HTTP {answer.status_code}" + (f": {text[:300]}" if text else "")


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def why(exc: BaseException) -> str:
    """Why a call got no answer, on one line."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    text = " ".join(redact(str(exc), _sent(exc)).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sent(answer: httpx.Response | BaseException) -> tuple[str, ...]:
    """The credentials of the request behind an answer or an httpx error (none when it has no request)."""
    try:
        request = answer.request if isinstance(answer, httpx.Response | httpx.HTTPError) else None
    except RuntimeError:  # an answer or error made without a request
        return ()
    return credentials(request.headers.get("authorization")) if request is not None else ()

"""The ``ray`` executor: runs each placed job as a Ray job, through the Jobs API of a Ray cluster's dashboard.

Every run (one job attempt) is a Ray job whose submission id is ``sg-<installation8>-<job_id>-a<attempt>``
(:func:`submission_id`); the handle's key is that id, so a restarted server finds its runs again. The job's command
is the Ray entrypoint, which Ray runs with ``/bin/sh -c`` on a node of the cluster, as the local executor does. Its
environment is the Ray node's plus the job's own variables and ``STARGATE_JOB_ID``, ``STARGATE_ATTEMPT``,
``STARGATE_CLUSTER`` (runtime env ``env_vars``): nothing of the server's own environment. A job's variables that
change how processes start (``PATH``...) are set for its command only (Ray starts its workers with its runtime env),
and it cannot set the GPU variables nor ``STARGATE_*``. GPUs are asked of Ray as
``entrypoint_num_gpus`` (or as the custom resource ``gpu_resource`` names), so Ray sets ``CUDA_VISIBLE_DEVICES``.
A head on the server's own machine runs each command in a sandbox that hides the server's state directory
(:mod:`stargate.executors.ray_sandbox`).

Idempotency: Ray refuses a second job with a submission id it already has, so a second :meth:`RayExecutor.submit`
of one attempt returns the first run's handle. :meth:`RayExecutor.find` never starts a run: when Ray has none for
the attempt it takes the submission id itself with a placeholder job (entrypoint ``true``, metadata
``stargate_withdrawn``) and writes a marker ``<home>/runs/ray-withdrawn/<submission id>``; a submit still on its way
then finds the id taken by the placeholder (or the marker, should the Ray cluster have lost its job table) and is
refused. Every HTTP call has a timeout; an unreachable Ray raises :class:`RayExecutorError` (never a ``lost`` run).
"""

from __future__ import annotations

import os
import re
import shlex
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from stargate.domain.executors import RayExecutorConfig
from stargate.executors.base import (
    MAX_LOG_CHUNK,
    Capabilities,
    EngineUnreachableError,
    Health,
    RunHandle,
    RunRequest,
    RunState,
    RunStatus,
)
from stargate.executors.local_state import utf8_boundary
from stargate.executors.ray_sandbox import RaySandbox, RaySandboxError, sandbox_for

KIND = "ray"
HEALTH_BUDGET_S = 5.0
"""Longest a :meth:`RayExecutor.health` check waits in all, seconds."""
FAILED_NODE_WINDOW_S = 600.0
"""A node Ray reports dead by surprise counts as failed for this long after it died, seconds (Ray keeps dead nodes
in its list long after an autoscaler replaced them)."""
WITHDRAWN_KEY = "stargate_withdrawn"
"""Metadata key marking the placeholder job :meth:`RayExecutor.find` submits to withdraw an attempt."""
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GPU_VARIABLES = frozenset(
    {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"}
)
"""Variables that say which GPUs a process may use: Ray sets them; a job's own are dropped (it cannot widen its
GPUs)."""
CARRIED = "STARGATE_ENV_"
"""Prefix of the runtime env variables that carry a job's process-start variables (see :func:`_starts_processes`) to
its command: the entrypoint exports each under its own name and unsets the carrier."""
_UNSTARTABLE = {
    "RUNTIME_ENV_SETUP_FAILURE",
    "JOB_SUPERVISOR_ACTOR_START_FAILURE",
    "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
    "JOB_ENTRYPOINT_COMMAND_START_ERROR",
}
"""Ray's error types for a job whose command never started (the scheduler fails such a job as unstartable)."""
_LOST = {"JOB_SUPERVISOR_ACTOR_DIED", "JOB_SUPERVISOR_ACTOR_START_TIMEOUT", "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"}
"""Ray's error types for a job Ray itself lost track of (its node died, or it never got a place in time)."""


class RayExecutorError(RuntimeError):
    """The Ray executor could not do what was asked (the message says why, naming the Ray address)."""


class RayUnreachableError(RayExecutorError, EngineUnreachableError):
    """The Ray dashboard did not answer (refused, reset, timed out)."""


def submission_id(installation: str | None, job_id: str, attempt: int) -> str:
    """The Ray submission id of one run: ``sg-<first 8 characters of the installation id, or 'local'>-<job id>-a<n>``;
    RayExecutorError for a job id or attempt that cannot name one."""
    if not _SAFE_ID.match(job_id) or attempt < 0:
        raise RayExecutorError(f"job id {job_id!r} / attempt {attempt} cannot name a Ray job")
    owner = (installation or "")[:8] or "local"
    if not _SAFE_ID.match(owner):
        raise RayExecutorError(f"installation id {installation!r} cannot name a Ray job")
    return f"sg-{owner}-{job_id}-a{attempt}"


def find_token(environ: Mapping[str, str], home: Path | None = None) -> str | None:
    """The token Ray itself would send: RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH names, else
    ``~/.ray/auth_token``; None when there is none."""
    if environ.get("RAY_AUTH_TOKEN"):
        return environ["RAY_AUTH_TOKEN"].strip()
    path = Path(environ["RAY_AUTH_TOKEN_PATH"]) if environ.get("RAY_AUTH_TOKEN_PATH") else None
    if path is None:
        path = (home or Path.home()) / ".ray" / "auth_token"
    try:
        token = path.read_text().strip()
    except OSError:
        return None
    return token or None


class RayExecutor:
    """Runs jobs on one Ray cluster through its Jobs API (``address``: the dashboard's http(s) address).

    Safe to call from several threads at once (one HTTP client with a connection pool; Ray itself refuses a second
    job of one submission id)."""

    kind = KIND
    CAPABILITIES = Capabilities(images=False, multinode=True, reattach=True, logs=True)
    """Shell commands only (no images); a gang's driver gets its first node's GPUs and reserves the rest itself."""

    def __init__(
        self,
        address: str,
        *,
        executor_id: str = KIND,
        token: str | None = None,
        gpu_resource: str = "GPU",
        withdrawn_dir: Path,
        installation: str | None = None,
        timeout_s: float = 10.0,
        sandbox: RaySandbox | None = None,
    ) -> None:
        """``token``: sent as a bearer token (None: no Authorization header); ``withdrawn_dir``: where withdrawn
        attempts are marked; ``installation``: the installation id (its first 8 characters name the runs);
        ``timeout_s``: the longest one HTTP call may take, seconds; ``sandbox``: what each command runs in (a head
        on the server's machine)."""
        self.address = address.rstrip("/")
        self.sandbox = sandbox
        self.executor_id = executor_id
        self.gpu_resource = gpu_resource
        self.withdrawn_dir = Path(withdrawn_dir)
        self.installation = installation
        self.capabilities = self.CAPABILITIES
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.address, headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))
        )

    @classmethod
    def from_config(cls, config: RayExecutorConfig, settings: object) -> RayExecutor:
        """The executor a fleet's ``kind: ray`` entry describes; RayExecutorError naming the variable when
        ``token_env`` names one the server's environment does not set, or naming ``address`` when it is on the
        server's machine and bubblewrap cannot sandbox its jobs here. ``settings``: any object with ``home`` (runs go
        under ``<home>/runs/ray-withdrawn/``), ``installation_id`` and ``private_dirs`` (default: ``home``)."""
        if config.token_env is not None:
            token = os.environ.get(config.token_env)
            if not token:
                raise RayExecutorError(
                    f"executor '{config.id}': environment variable {config.token_env} is not set (token_env) or is "
                    "empty in the server's environment: set it to the Ray cluster's token and restart the server"
                )
        else:
            token = find_token(os.environ)
        home = Path(getattr(settings, "home"))  # noqa: B009 - settings is any object with a home
        try:
            sandbox = sandbox_for(config.address, getattr(settings, "private_dirs", (home,)))
        except RaySandboxError as exc:
            raise RayExecutorError(
                f"executor '{config.id}': address {config.address} is on the server's own machine, where Ray jobs "
                f"run as the Ray head's user and could read the server's state directory ({home}); Stargate runs "
                f"each in a bubblewrap sandbox that hides it, and cannot here: {exc}. Install bubblewrap on this "
                "machine, or set address to a Ray head on another machine"
            ) from None
        return cls(
            config.address,
            executor_id=config.id,
            token=token,
            gpu_resource=config.gpu_resource,
            withdrawn_dir=home / "runs" / "ray-withdrawn",
            installation=getattr(settings, "installation_id", None),
            sandbox=sandbox,
        )

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    # -- the Executor protocol ------------------------------------------------------------------------------------

    def submit(self, request: RunRequest) -> RunHandle:
        """Submit the run as a Ray job, or return the handle of the job already submitted for this (job id,
        attempt); RayExecutorError for a request that cannot run, a withdrawn attempt, or a Ray that does not answer."""
        sid = self.submission_id(request.job_id, request.attempt)
        body = self._job_body(request, sid)
        if self._marker(sid).exists():
            raise RayExecutorError(f"{request.job_id} attempt {request.attempt} was withdrawn; it never starts")
        answer = self._call("POST", "/api/jobs/", json=body)
        if answer.status_code != 200:
            if "already exists" not in answer.text:
                raise RayExecutorError(f"Ray at {self.address} did not take job {sid}: {_brief(answer)}")
            info = self._info(sid)
            if info is None:
                raise RayExecutorError(f"Ray at {self.address} says job {sid} exists but does not find it")
            if _withdrawn(info):
                raise RayExecutorError(f"{request.job_id} attempt {request.attempt} was withdrawn; it never starts")
        return RunHandle(self.executor_id, sid)

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        """The Ray job already submitted for (job id, attempt), or None; never starts one, and after None no submit
        of this attempt can start one (the submission id is taken by a placeholder and a marker is written)."""
        sid = self.submission_id(job_id, attempt)
        info = self._info(sid)
        if info is None:
            answer = self._call("POST", "/api/jobs/", json=self._placeholder(job_id, attempt, sid))
            if answer.status_code == 200:
                self._withdraw(sid)
                return None
            if "already exists" not in answer.text:
                raise RayExecutorError(f"Ray at {self.address} refused to withdraw {sid}: {_brief(answer)}")
            info = self._info(sid)  # a submit got there first: that run is the one
            if info is None:
                raise RayExecutorError(f"Ray at {self.address} says job {sid} exists but does not find it")
        if _withdrawn(info):
            self._withdraw(sid)
            return None
        return RunHandle(self.executor_id, sid)

    def poll(self, handle: RunHandle) -> RunStatus:
        """The run's state from Ray: pending or running → running; succeeded (exit 0); failed (with the command's
        exit code when Ray has one); stopped → cancelled; a submission id Ray does not know → interrupted (Ray forgot
        the run: its head restarted without its job table, or the job was deleted; not the job's fault, so it runs
        again). Raises RayExecutorError when Ray does not answer."""
        info = self._info(handle.key)
        if info is None:
            return RunStatus(
                RunState.INTERRUPTED,
                reason=f"Ray at {self.address} has no job {handle.key} (its head restarted, or the job was deleted)",
            )
        return status_of(info)

    def cancel(self, handle: RunHandle) -> None:
        """Ask Ray to stop the run (SIGTERM, then SIGKILL after Ray's grace time); idempotent: a run that ended or
        that Ray does not know is left as it is."""
        answer = self._call("POST", f"/api/jobs/{_path(handle.key)}/stop")
        if answer.status_code not in (200, 404):
            raise RayExecutorError(f"Ray at {self.address} did not stop {handle.key}: {_brief(answer)}")

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` (at most 1 MiB, cut at a UTF-8 boundary) and the byte offset to go on.
        Ray's log of a job starts with a few lines of its own (runtime env setup, the entrypoint it runs)."""
        if offset < 0:
            raise ValueError(f"log offset must be ≥ 0 bytes, got {offset}")
        answer = self._call("GET", f"/api/jobs/{_path(handle.key)}/logs")
        if answer.status_code == 404:
            return "", offset
        if answer.status_code != 200:
            raise RayExecutorError(f"Ray at {self.address} did not give the logs of {handle.key}: {_brief(answer)}")
        data = str(_json(answer, self.address).get("logs") or "").encode("utf-8")
        if offset >= len(data):
            return "", offset
        chunk = data[offset : offset + MAX_LOG_CHUNK]
        cut = utf8_boundary(chunk)
        return chunk[:cut].decode("utf-8", errors="replace"), offset + cut

    # -- ChecksHealth ---------------------------------------------------------------------------------------------

    def health(self) -> Health:
        """Ask Ray for its version, then its nodes, within 5 s in all; never raises. Unreachable (or a refused token)
        → not reachable, with the reason; nodes that died by surprise in the last 10 minutes count as failed."""
        found: list[Health] = []
        check = threading.Thread(target=lambda: found.append(self._health()), name="stargate-ray-health", daemon=True)
        check.start()
        check.join(HEALTH_BUDGET_S + 0.5)  # the HTTP timeouts bound it already; a hung name lookup does not
        if not found:
            return Health(False, f"ray at {self.address}: no answer within {HEALTH_BUDGET_S:g} s")
        return found[0]

    def _health(self) -> Health:
        """:meth:`health` without the thread that bounds it."""
        deadline = time.monotonic() + HEALTH_BUDGET_S
        try:
            answer = self._http.get("/api/version", timeout=_left(deadline, 2.5))
            if answer.status_code in (401, 403):
                return Health(False, f"ray at {self.address}: the token was refused (HTTP {answer.status_code})")
            if answer.status_code != 200:
                return Health(False, f"ray at {self.address}: /api/version answered {_brief(answer)}")
        except Exception as exc:  # never raises: any failure to get an answer is an unreachable engine
            return Health(False, f"ray at {self.address}: {_why(exc)}")
        try:
            answer = self._http.get(
                "/api/v0/nodes", params={"limit": "10000", "timeout": "2"}, timeout=_left(deadline, 0.1)
            )
            nodes = answer.json()["data"]["result"]["result"] if answer.status_code == 200 else None
            if not isinstance(nodes, list):
                return Health(True)
        except Exception:  # the dashboard answers but cannot list nodes: reachable, node count unknown
            return Health(True)
        alive, failed = count_nodes(nodes, now_ms=time.time() * 1000)
        if failed:
            return Health(
                True, f"ray at {self.address}: {failed} of {alive + failed} nodes failed", alive + failed, failed
            )
        return Health(True, "", alive, 0)

    # -- helpers --------------------------------------------------------------------------------------------------

    def submission_id(self, job_id: str, attempt: int) -> str:
        """The Ray submission id of (job id, attempt) for this installation."""
        return submission_id(self.installation, job_id, attempt)

    def _job_body(self, request: RunRequest, sid: str) -> dict[str, Any]:
        """The Jobs API submission of ``request``: entrypoint, env vars, GPUs as resources, metadata."""
        if not request.command.strip():
            raise RayExecutorError(f"{request.job_id}: the Ray executor runs commands; this job has none")
        if "\0" in request.command:
            raise RayExecutorError(f"{request.job_id}: the command holds a NUL byte")
        for name, value in request.environment.items():
            if not _ENV_NAME.match(name) or "\0" in value:
                raise RayExecutorError(f"{request.job_id}: environment variable {name!r} is not a shell name")
        own = {k: v for k, v in request.environment.items() if not k.startswith("STARGATE_") and k not in GPU_VARIABLES}
        env = {k: v for k, v in own.items() if not _starts_processes(k)}
        carried = sorted(k for k in own if _starts_processes(k))
        env.update({CARRIED + k: own[k] for k in carried})
        env.update(
            STARGATE_JOB_ID=request.job_id,
            STARGATE_ATTEMPT=str(request.attempt),
            STARGATE_CLUSTER=request.cluster,
            STARGATE_GPUS=str(request.gpus),
            STARGATE_NODES=str(request.nodes),
            STARGATE_GPUS_PER_NODE=str(request.gpus_per_node),
        )
        metadata = {"stargate_job_id": request.job_id, "stargate_attempt": str(request.attempt)}
        metadata.update({"stargate_team": request.team} if request.team else {})
        metadata.update({"stargate_name": request.name} if request.name else {})
        entrypoint = _entrypoint(request.command, carried)
        body: dict[str, Any] = {
            "entrypoint": self.sandbox.wrap(entrypoint) if self.sandbox else entrypoint,
            "submission_id": sid,
            "runtime_env": {"env_vars": env},
            "metadata": metadata,
        }
        gpus = request.gpus_per_node if request.nodes > 1 else request.gpus
        if gpus > 0 and self.gpu_resource == "GPU":
            body["entrypoint_num_gpus"] = gpus
        elif gpus > 0:
            body["entrypoint_resources"] = {self.gpu_resource: gpus}
        return body

    def _placeholder(self, job_id: str, attempt: int, sid: str) -> dict[str, Any]:
        """The job that takes an attempt's submission id so that it never starts: runs ``true``, asks nothing."""
        metadata = {WITHDRAWN_KEY: "true", "stargate_job_id": job_id, "stargate_attempt": str(attempt)}
        return {"entrypoint": "true", "submission_id": sid, "metadata": metadata, "entrypoint_num_cpus": 0}

    def _info(self, sid: str) -> dict[str, Any] | None:
        """Ray's JobDetails of ``sid`` as a dict; None when Ray does not know it."""
        answer = self._call("GET", f"/api/jobs/{_path(sid)}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise RayExecutorError(f"Ray at {self.address} did not describe job {sid}: {_brief(answer)}")
        return _json(answer, self.address)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP call to the dashboard; RayExecutorError when it does not answer (in time), or refuses the
        token."""
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # no answer: the engine is unreachable
            raise RayUnreachableError(f"ray at {self.address}: {_why(exc)}") from exc
        except httpx.HTTPError as exc:
            raise RayExecutorError(f"ray at {self.address}: {_why(exc)}") from exc
        if answer.status_code in (401, 403):
            raise RayExecutorError(
                f"ray at {self.address}: the token was refused (HTTP {answer.status_code}); set the executor's "
                "token_env to a variable holding the cluster's token"
            )
        return answer

    def _marker(self, sid: str) -> Path:
        return self.withdrawn_dir / sid

    def _withdraw(self, sid: str) -> None:
        """Write the withdrawn marker of ``sid`` (private to the server's user)."""
        self.withdrawn_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._marker(sid).write_text(f"{time.time():.3f}\n")


def status_of(info: Mapping[str, Any]) -> RunStatus:
    """The run status a Ray JobDetails (as JSON) describes."""
    state = str(info.get("status", "")).upper()
    message = _first_line(str(info.get("message") or ""))
    code = info.get("driver_exit_code")
    exit_code = _shell_code(code) if isinstance(code, int) else None
    if state in ("PENDING", "RUNNING"):
        return RunStatus(RunState.RUNNING)
    if state == "SUCCEEDED":
        return RunStatus(RunState.SUCCEEDED, exit_code=0 if exit_code is None else exit_code)
    if state == "STOPPED":
        return RunStatus(RunState.CANCELLED, exit_code=exit_code, reason="stopped on Ray")
    error = str(info.get("error_type") or "")
    if state == "FAILED" and exit_code is None and error in _UNSTARTABLE:
        return RunStatus(RunState.FAILED, reason=f"cannot start on Ray ({error}): {message}")
    if state == "FAILED" and exit_code is None and error in _LOST:
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


def _starts_processes(name: str) -> bool:
    """Whether a variable changes how processes start (``PATH``, ``LD_*``, ``PYTHON*``, a shell's start file): Ray
    starts its own workers with its runtime env's variables, so a job's value there (a ``PATH`` without bash) keeps
    the job pending until Ray's start timeout. Such variables are set for the job's command only."""
    return name in ("PATH", "BASH_ENV", "ENV", "SHELL", "IFS") or name.startswith(("LD_", "DYLD_", "PYTHON"))


def _entrypoint(command: str, carried: list[str]) -> str:
    """The Ray entrypoint (run by ``/bin/sh -c``): ``command`` itself, or, when the job sets process-start variables,
    a prologue that exports each from its carrier (values never appear in the entrypoint, names are shell names)
    then runs ``command`` with ``exec /bin/sh -c`` (quoted: its metacharacters reach that shell only)."""
    if not carried:
        return command
    exports = " ".join(f'{name}="${CARRIED}{name}"' for name in carried)
    unset = " ".join(CARRIED + name for name in carried)
    return f"export {exports}; unset {unset}; exec /bin/sh -c -- {shlex.quote(command)}"


def _withdrawn(info: Mapping[str, Any]) -> bool:
    metadata = info.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get(WITHDRAWN_KEY) == "true"


def _shell_code(code: int) -> int:
    """A shell-style exit code: 128 + N for a command killed by signal N (Popen reports -N)."""
    return 128 - code if code < 0 else code


def _path(sid: str) -> str:
    return quote(sid, safe="")


def _json(answer: httpx.Response, address: str) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError as exc:
        raise RayExecutorError(f"Ray at {address} answered something that is not JSON: {_brief(answer)}") from exc
    if not isinstance(data, dict):
        raise RayExecutorError(f"Ray at {address} answered an unexpected {type(data).__name__}: {_brief(answer)}")
    return data


def _brief(answer: httpx.Response) -> str:
    """An HTTP answer on one short line: ``HTTP 500: ValueError: ...`` (the last line of a Python traceback)."""
    lines = [line.strip() for line in answer.text.splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return f"HTTP {answer.status_code}" + (f": {text[:300]}" if text else "")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


def _why(exc: BaseException) -> str:
    """Why a call got no answer, on one line."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _left(deadline: float, most: float) -> float:
    """Seconds left before ``deadline`` (at least 0.05), at most ``most``."""
    return max(0.05, min(most, deadline - time.monotonic()))

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
(:mod:`stargate.executors.ray_sandbox`). Outside it, the UTF-8 relay (:mod:`stargate.executors.log_text`) runs the
(sandboxed) command and writes its output to Ray's log as valid UTF-8, since Ray cannot serve a log that is not:
:meth:`RayExecutor.logs` of such a log (a run started before) raises
:class:`~stargate.executors.log_text.LogNotTextError`. The executor's token never appears in the errors it raises or
returns (an engine or proxy that echoes the ``Authorization`` header).

Idempotency: Ray refuses a second job with a submission id it already has, so a second :meth:`RayExecutor.submit`
of one attempt returns the first run's handle. :meth:`RayExecutor.find` never starts a run: when Ray has none for
the attempt it takes the submission id itself with a placeholder job (entrypoint ``true``, metadata
``stargate_withdrawn``) and writes a marker ``<home>/runs/ray-withdrawn/<submission id>``; a submit still on its way
then finds the id taken by the placeholder (or the marker, should the Ray cluster have lost its job table) and is
refused. Every HTTP call has a timeout; an unreachable Ray raises :class:`RayExecutorError` (never a ``lost`` run).

Retention: :meth:`RayExecutor.records` lists this installation's withdrawn markers and the jobs Ray keeps of its
runs (placeholders too; active while pending or running), and :meth:`RayExecutor.prune` removes those the server's
housekeeping step lets go (see :mod:`stargate.executors.retention`): a marker file is deleted, a job through the
Jobs API (``DELETE /api/jobs/<id>``, which Ray allows for finished jobs only; its driver log files stay on the node
until Ray's own log rotation). :meth:`RayExecutor.logs` of a job Ray no longer knows raises
:class:`~stargate.executors.base.RunGoneError`.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
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
    Pruned,
    RunGoneError,
    RunHandle,
    RunRecord,
    RunRequest,
    RunState,
    RunStatus,
)
from stargate.executors.local_state import utf8_boundary
from stargate.executors.log_text import RELAY_PROGRAM, LogNotTextError, relayed
from stargate.executors.prune_files import names_in, remove_below
from stargate.executors.ray_answers import (
    CARRIED,
    FINISHED,
    brief,
    count_nodes,
    job_entrypoint,
    starts_processes,
    status_of,
    why,
)
from stargate.executors.ray_sandbox import RaySandbox, RaySandboxError, sandbox_for
from stargate.executors.redact import redact
from stargate.executors.retention import run_of
from stargate.executors.utf8_relay import RELAY_ENV

KIND = "ray"
HEALTH_BUDGET_S = 5.0
"""Longest a :meth:`RayExecutor.health` check waits in all, seconds."""
WITHDRAWN_KEY = "stargate_withdrawn"
"""Metadata key marking the placeholder job :meth:`RayExecutor.find` submits to withdraw an attempt."""
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GPU_VARIABLES = frozenset(
    {"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"}
)
"""Variables that say which GPUs a process may use: Ray sets them; a job's own are dropped (it cannot widen its
GPUs)."""


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
        self._token = token
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
                raise RayExecutorError(f"Ray at {self.address} did not take job {sid}: {brief(answer)}")
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
                raise RayExecutorError(f"Ray at {self.address} refused to withdraw {sid}: {brief(answer)}")
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
        status = status_of(info)
        return replace(status, reason=redact(status.reason, [self._token])) if self._token else status

    def cancel(self, handle: RunHandle) -> None:
        """Ask Ray to stop the run (SIGTERM, then SIGKILL after Ray's grace time); idempotent: a run that ended or
        that Ray does not know is left as it is."""
        answer = self._call("POST", f"/api/jobs/{_path(handle.key)}/stop")
        if answer.status_code not in (200, 404):
            raise RayExecutorError(f"Ray at {self.address} did not stop {handle.key}: {brief(answer)}")

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` (at most 1 MiB, cut at a UTF-8 boundary) and the byte offset to go on.
        Ray's log of a job starts with a few lines of its own (runtime env setup, the entrypoint it runs).
        LogNotTextError for a log Ray cannot serve because it is not UTF-8 text (written before the relay)."""
        if offset < 0:
            raise ValueError(f"log offset must be ≥ 0 bytes, got {offset}")
        answer = self._call("GET", f"/api/jobs/{_path(handle.key)}/logs")
        if answer.status_code == 404:
            raise RunGoneError(f"Ray at {self.address} has no job {handle.key} any more")
        if answer.status_code == 500 and "UnicodeDecodeError" in answer.text:
            raise LogNotTextError(
                f"Ray at {self.address} cannot serve the log of its job {handle.key}: the log holds bytes that are not "
                "UTF-8 text (Ray answers HTTP 500, UnicodeDecodeError: a run started before Stargate made its runs' "
                "output valid UTF-8, or a command that wrote to its log file itself); it is the file "
                f"job-driver-{handle.key}.log in the logs directory of Ray's session on the node that ran the job"
            )
        if answer.status_code != 200:
            raise RayExecutorError(f"Ray at {self.address} did not give the logs of {handle.key}: {brief(answer)}")
        data = str(_json(answer, self.address).get("logs") or "").encode("utf-8")
        if offset >= len(data):
            return "", offset
        chunk = data[offset : offset + MAX_LOG_CHUNK]
        cut = utf8_boundary(chunk)
        return chunk[:cut].decode("utf-8", errors="replace"), offset + cut

    # -- retention ------------------------------------------------------------------------------------------------

    def records(self) -> list[RunRecord]:
        """This installation's withdrawn markers (``marker/<id>``) and the jobs Ray keeps of its runs
        (``job/<id>``, active while pending or running); RayExecutorError when Ray does not answer."""
        prefix = f"sg-{(self.installation or '')[:8] or 'local'}-"
        found = [
            RunRecord(*run, f"marker/{sid}")
            for sid in names_in(self.withdrawn_dir)
            if (run := run_of(sid, prefix)) is not None
        ]
        answer = self._call("GET", "/api/jobs/")
        if answer.status_code != 200:
            raise RayExecutorError(f"Ray at {self.address} did not list its jobs: {brief(answer)}")
        try:
            jobs = answer.json()
        except ValueError as exc:
            raise RayExecutorError(f"Ray at {self.address} listed its jobs in something that is not JSON") from exc
        for job in jobs if isinstance(jobs, list) else []:
            sid = job.get("submission_id") if isinstance(job, Mapping) else None
            run = run_of(sid, prefix) if isinstance(sid, str) else None
            if run is not None:
                active = str(job.get("status", "")).upper() not in FINISHED
                found.append(RunRecord(*run, f"job/{sid}", active))
        return found

    def prune(self, records: Sequence[RunRecord]) -> Pruned:
        """Delete these markers, and these jobs from Ray (a job Ray no longer has is fine; one still going is
        refused by Ray and left: a problem)."""
        removed, problems = 0, []
        for record in records:
            kind, _, sid = record.what.partition("/")
            if kind not in ("marker", "job") or not _SAFE_ID.match(sid):
                problems.append(f"{record.what}: not a record of the Ray executor '{self.executor_id}'")
                continue
            try:
                if kind == "marker":
                    removed += remove_below(self.withdrawn_dir, [sid])
                    continue
                answer = self._call("DELETE", f"/api/jobs/{_path(sid)}")
            except (OSError, RayExecutorError) as exc:
                problems.append(f"{record.what}: {exc}")
                continue
            if answer.status_code == 200:
                removed += 1
            elif answer.status_code != 404:
                problems.append(f"{record.what}: Ray at {self.address} did not delete it: {brief(answer)}")
        return Pruned(removed, tuple(problems))

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
                return Health(False, f"ray at {self.address}: /api/version answered {brief(answer)}")
        except Exception as exc:  # never raises: any failure to get an answer is an unreachable engine
            return Health(False, f"ray at {self.address}: {why(exc)}")
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
        """The Jobs API submission of ``request``: entrypoint (the command, in its sandbox, under the UTF-8 relay),
        env vars, GPUs as resources, metadata."""
        if not request.command.strip():
            raise RayExecutorError(f"{request.job_id}: the Ray executor runs commands; this job has none")
        if "\0" in request.command:
            raise RayExecutorError(f"{request.job_id}: the command holds a NUL byte")
        for name, value in request.environment.items():
            if not _ENV_NAME.match(name) or "\0" in value:
                raise RayExecutorError(f"{request.job_id}: environment variable {name!r} is not a shell name")
        own = {k: v for k, v in request.environment.items() if not k.startswith("STARGATE_") and k not in GPU_VARIABLES}
        env = {k: v for k, v in own.items() if not starts_processes(k)}
        carried = sorted(k for k in own if starts_processes(k))
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
        env[RELAY_ENV] = RELAY_PROGRAM
        entrypoint = job_entrypoint(request.command, carried)
        # the relay runs outside the sandbox (the sandboxed command cannot see it) and runs nothing but the command
        body: dict[str, Any] = {
            "entrypoint": relayed(self.sandbox.wrap(entrypoint) if self.sandbox else entrypoint),
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
            raise RayExecutorError(f"Ray at {self.address} did not describe job {sid}: {brief(answer)}")
        return _json(answer, self.address)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP call to the dashboard; RayExecutorError when it does not answer (in time), or refuses the
        token."""
        try:
            answer = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # no answer: the engine is unreachable
            raise RayUnreachableError(f"ray at {self.address}: {why(exc)}") from exc
        except httpx.HTTPError as exc:
            raise RayExecutorError(f"ray at {self.address}: {why(exc)}") from exc
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


def _withdrawn(info: Mapping[str, Any]) -> bool:
    metadata = info.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get(WITHDRAWN_KEY) == "true"


def _path(sid: str) -> str:
    return quote(sid, safe="")


def _json(answer: httpx.Response, address: str) -> dict[str, Any]:
    try:
        data = answer.json()
    except ValueError as exc:
        raise RayExecutorError(f"Ray at {address} answered something that is not JSON: {brief(answer)}") from exc
    if not isinstance(data, dict):
        raise RayExecutorError(f"Ray at {address} answered an unexpected {type(data).__name__}: {brief(answer)}")
    return data


def _left(deadline: float, most: float) -> float:
    """Seconds left before ``deadline`` (at least 0.05), at most ``most``."""
    return max(0.05, min(most, deadline - time.monotonic()))

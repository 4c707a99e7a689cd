"""The ``local`` executor: runs each placed job as a real subprocess on this machine (the embedded default).

Every run (one job attempt) has a directory ``RUNS_DIR/<job_id>/attempt-<n>/`` holding:

- ``claim`` — created exclusively by the runner; a second submit of the same (job, attempt) never runs twice;
- ``run.json`` — the runner's pid and start marker, the command's pid and process group, the start time;
- ``output.log`` — the command's stdout and stderr (byte offsets are what :meth:`LocalExecutor.logs` pages by);
- ``exit.json`` — the exit code, written atomically by the runner when the command ends (even if the server is down);
- ``cancel_requested`` — written by :meth:`LocalExecutor.cancel` before it signals the run.

:meth:`LocalExecutor.find` never starts a run: when none was started it writes ``claim`` itself (holding
``withdrawn``), so a runner still on its way finds the run claimed and exits without running the command.

- ``launch.json`` — what the runner starts: the command, its environment, its working directory and identity.

Retention: :meth:`LocalExecutor.records` lists the run directory and working directory of each run of its
installation, :meth:`LocalExecutor.prune` removes those the server's housekeeping step lets go (never one whose
runner lives; see :mod:`stargate.executors.retention`), and :meth:`LocalExecutor.logs` of a run whose directory is
gone raises :class:`~stargate.executors.base.RunGoneError`.

All of it is private to the server's user (0700 directories, 0600 files): the job writes ``output.log`` only through
the descriptor its runner passes it. The job works in ``WORK_ROOT/<team>/<job_id>/attempt-<n>/`` (its HOME, TMPDIR
and STARGATE_RUN_DIR), under the identity and sandbox its :class:`~stargate.executors.isolation.Isolation` gives it.

The runner (:mod:`stargate.executors.local_runner`) lives in a session of its own, so a server crash leaves runs
going; after a restart a new :class:`LocalExecutor` on the same directory finds them again from their handles, and a
handle whose pid now belongs to another process (pid reuse, detected by its start time) reads as ``lost``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from stargate.executors.base import (
    ArgumentLimits,
    Capabilities,
    Pruned,
    RunChange,
    RunGoneError,
    RunHandle,
    RunRecord,
    RunRequest,
    RunState,
    RunStatus,
)
from stargate.executors.bwrap import DEFAULT_PATH, sandbox_args, setpriv_args
from stargate.executors.isolation import Isolation, IsolationMode, TeamIdentities, team_dir_name
from stargate.executors.local_runner import (
    CANCEL,
    CLAIM,
    DEFAULT_LOG_LIMIT,
    EXIT,
    LAUNCH,
    LOG,
    RECORD,
    RUNNER_PATH,
    WORK_FD,
    write_json_atomically,
)
from stargate.executors.local_state import (
    WITHDRAWN,
    RunKey,
    claimant,
    final_status,
    is_alive,
    pid_alive,
    prune_runs,
    read_json,
    read_log_chunk,
    run_records,
    signal_group,
    signal_pid,
    tail,
    vanished_status,
    withdraw,
)

KIND = "local"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_RUNNER = Path(__file__).with_name("local_runner.py")
_HAS_PROC = Path("/proc/self/stat").exists()


class LocalExecutorError(RuntimeError):
    """The local executor could not start a run (the message says why)."""


class LocalExecutor:
    """Runs jobs as subprocesses of this machine, one directory per run under ``runs_dir``.

    Safe to call from several threads at once: two submits of one (job id, attempt) still start one command (the
    runner claims the run with an exclusive file create; the other submit waits for its record).
    """

    kind = KIND
    CAPABILITIES = Capabilities(
        images=False,
        argument_limits=ArgumentLimits.of_this_host(),
        on_server_host=True,
        multinode=False,
        gpu_isolation=False,
        reattach=True,
        logs=True,
    )
    """What every local executor can do, whatever its isolation: shell commands only (no images), passed on an exec
    so this host's argument limits apply, on the server's machine. An instance's :attr:`capabilities` add what its
    isolation gives (``team_isolation``, ``sandbox``)."""

    def __init__(
        self,
        runs_dir: Path,
        *,
        grace_s: float = 10.0,
        workdir: Path | None = None,
        start_timeout_s: float = 30.0,
        base_environment: Mapping[str, str] | None = None,
        isolation: Isolation | None = None,
        work_root: Path | None = None,
        identities: TeamIdentities | None = None,
        hidden: Sequence[Path] = (),
        installation: str | None = None,
        max_log_bytes: int = DEFAULT_LOG_LIMIT,
    ) -> None:
        """``grace_s``: seconds between SIGTERM and SIGKILL on cancel; ``workdir``: one working directory for every
        command (``none`` isolation only; default: each run's own under ``work_root``, default ``runs_dir/../work``);
        ``base_environment``: the variables every job starts from (default: PATH, LANG, LC_ALL and TZ only, so no
        server secret reaches a job); ``isolation``: default none; ``identities``: the team → uid map (``users``;
        default ``runs_dir/../job-uids.json``); ``hidden``: directories a sandboxed job must never see besides the state
        directory (``runs_dir/..``), e.g. the SQLite database's directory; ``installation``: the id of the database
        whose runs these are (the server passes it): runs and working directories then go under
        ``runs_dir/<installation>/`` and ``work_root/<installation>/``, so a new database over the same state
        directory never finds another one's runs (None: directly under them, for tests and tools); ``max_log_bytes``:
        the most output one run's ``output.log`` keeps (default 1 GiB; the rest is dropped, with a line saying so)."""
        if max_log_bytes < 1:
            raise ValueError(f"max_log_bytes must be at least 1, got {max_log_bytes}")
        self.max_log_bytes = max_log_bytes
        if installation is not None and (not _SAFE_ID.match(installation) or installation in {".", ".."}):
            raise ValueError(f"installation id {installation!r} cannot name a directory")
        self.installation = installation
        self.runs_dir = Path(runs_dir)
        self.grace_s = grace_s
        self.isolation = isolation or Isolation()
        if workdir is not None and self.isolation.mode is not IsolationMode.NONE:
            raise ValueError("a shared working directory defeats isolation: workdir needs isolation none")
        self.workdir = workdir
        self.work_root = Path(work_root) if work_root is not None else self.runs_dir.parent / "work"
        self.identities = identities or TeamIdentities(self.runs_dir.parent / "job-uids.json", self.isolation.uid_base)
        self.hidden = tuple(dict.fromkeys(Path(p).absolute() for p in (self.runs_dir.parent, *hidden)))
        self.start_timeout_s = start_timeout_s
        self.base_environment = minimal_environment(os.environ) if base_environment is None else dict(base_environment)
        users = self.isolation.mode is IsolationMode.USERS
        self.capabilities = replace(
            self.CAPABILITIES,
            team_isolation=self.isolation.mode is not IsolationMode.NONE,
            sandbox=self.isolation.bwrap is not None,
        )
        _private_dir(self.runs_dir, 0o700)
        _private_dir(self.work_root, 0o711 if users and self.isolation.bwrap is None else 0o700)
        self.work_base = self.work_root / installation if installation is not None else self.work_root
        """Where this installation's teams get their directories (made by the server: never owned by a team)."""
        _private_dir(self.work_base, 0o711 if users and self.isolation.bwrap is None else 0o700)
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._children_lock = threading.Lock()  # the scheduler calls submit/poll/cancel from several threads
        self._watched: dict[str, RunKey] = {}
        """Runs whose end :meth:`changes` reports, by handle key."""

    def run_dir(self, job_id: str, attempt: int, installation: str | bool | None = True) -> Path:
        """The directory of one run of this executor's installation (or of ``installation``: a handle's); ValueError
        for a job id that is not a safe file name."""
        if not _SAFE_ID.match(job_id) or job_id in {".", ".."} or attempt < 0:
            raise ValueError(f"job id {job_id!r} / attempt {attempt} cannot name a run directory")
        owner = self.installation if installation is True else installation
        if isinstance(owner, str):
            if not _SAFE_ID.match(owner) or owner in {".", ".."}:
                raise ValueError(f"installation id {owner!r} cannot name a run directory")
            return self.runs_dir / owner / job_id / f"attempt-{attempt}"
        return self.runs_dir / job_id / f"attempt-{attempt}"

    def _key_dir(self, key: RunKey) -> Path:
        """The run directory a handle names (runs of before installation ids: directly under ``runs_dir``)."""
        return self.run_dir(key.job_id, key.attempt, key.installation)

    def submit(self, request: RunRequest) -> RunHandle:
        """Start the run, or return the handle of the run already started for this (job id, attempt);
        LocalExecutorError for a request it must not or cannot run (another team than ``--single-team``'s)."""
        self._reap()
        _check_request(request, self.isolation)
        run_dir = self.run_dir(request.job_id, request.attempt)
        record = read_json(run_dir / RECORD)
        if record is None and claimant(run_dir) == WITHDRAWN:
            raise LocalExecutorError(f"{request.job_id} attempt {request.attempt} was withdrawn; it never starts")
        if record is None:
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            record = self._await_record(run_dir, self._spawn(request, run_dir))
        start = record.get("start")
        key = RunKey(
            request.job_id,
            request.attempt,
            int(str(record["pid"])),
            start if isinstance(start, str) else None,
            self.installation,
        )
        handle = RunHandle(executor=KIND, key=key.encode())
        self.watch([handle])
        return handle

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        """The run already started for (job id, attempt), or None; never starts one.

        With no run yet, it claims the run itself (``claim`` holding ``withdrawn``): a runner still on its way then
        exits without running anything, and a later :meth:`submit` of this attempt is refused. A runner that holds
        the claim but has not written ``run.json`` yet is waited for (up to ``start_timeout_s``).
        """
        run_dir = self.run_dir(job_id, attempt)
        run_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.start_timeout_s
        while (record := read_json(run_dir / RECORD)) is None:
            if withdraw(run_dir):
                return None
            holder = claimant(run_dir)
            if holder == WITHDRAWN or not pid_alive(holder) or time.monotonic() > deadline:
                return None  # withdrawn before, or its runner died before it started anything
            time.sleep(0.01)
        start = record.get("start")
        pid = int(str(record["pid"]))
        key = RunKey(job_id, attempt, pid, start if isinstance(start, str) else None, self.installation)
        return RunHandle(executor=KIND, key=key.encode())

    def poll(self, handle: RunHandle) -> RunStatus:
        """The run's state: final from ``exit.json``; running while its runner lives; else lost (or cancelled)."""
        self._reap()
        return self._status(handle)

    def _status(self, handle: RunHandle) -> RunStatus:
        """:meth:`poll` without collecting ended runners first."""
        key = RunKey.decode(handle.key)
        run_dir = self._key_dir(key)
        done = read_json(run_dir / EXIT)
        if done is not None:
            return final_status(done, cancelled=(run_dir / CANCEL).exists())
        if not (run_dir / RECORD).exists():
            return RunStatus(RunState.LOST, reason=f"no record of run {key.job_id} attempt {key.attempt}")
        if is_alive(key.pid, key.start):
            return RunStatus(RunState.RUNNING)
        done = read_json(run_dir / EXIT)  # it may have ended between the two looks
        if done is not None:
            return final_status(done, cancelled=(run_dir / CANCEL).exists())
        return vanished_status(key, cancelled=(run_dir / CANCEL).exists())

    def watch(self, handles: Sequence[RunHandle]) -> None:
        """Report the end of these runs from :meth:`changes` (keys that are not local handles are ignored)."""
        keys: dict[str, RunKey] = {}
        for handle in handles:
            try:
                keys[handle.key] = RunKey.decode(handle.key)
            except ValueError:
                continue
        with self._children_lock:
            self._watched.update(keys)

    def changes(self) -> list[RunChange]:
        """The watched runs that ended since the last call (each once), with their final status.

        A run whose runner is a live child of this process is going on: one ``waitpid`` tells, no file is read.
        Other runs (started before a restart, or their runner ended) are read as :meth:`poll` reads them."""
        self._reap()
        with self._children_lock:
            watched = list(self._watched.items())
            children = dict(self._children)
        ended: list[RunChange] = []
        for key, run in watched:
            child = children.get(run.pid)
            if child is not None and child.poll() is None:
                continue
            handle = RunHandle(KIND, key)
            try:
                status = self._status(handle)
            except (OSError, ValueError) as exc:
                status = RunStatus(RunState.LOST, reason=f"cannot read the run's state: {exc}")
            if status.state.is_final():
                ended.append(RunChange(run.job_id, run.attempt, handle, status))
        if ended:
            with self._children_lock:
                for change in ended:
                    self._watched.pop(change.handle.key, None)
        return ended

    def cancel(self, handle: RunHandle) -> None:
        """Ask the run to stop: its runner forwards SIGTERM to the command's process group, then SIGKILL after
        ``grace_s``. Returns at once; idempotent; a finished run is left as it is."""
        key = RunKey.decode(handle.key)
        run_dir = self._key_dir(key)
        if (run_dir / EXIT).exists() or not run_dir.exists():
            return
        (run_dir / CANCEL).write_text(f"{time.time():.3f}\n")
        if is_alive(key.pid, key.start):
            signal_pid(key.pid, signal.SIGTERM)
            return
        record = read_json(run_dir / RECORD) or {}
        child, child_start = record.get("child_pid"), record.get("child_start")
        if isinstance(child, int) and is_alive(child, child_start):
            signal_group(child, signal.SIGKILL)  # the runner is gone: nobody left to escalate, so kill now

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` (at most 1 MiB, cut at a UTF-8 boundary) and the byte offset to go on;
        RunGoneError when the run's directory is gone (pruned)."""
        if offset < 0:
            raise ValueError(f"log offset must be ≥ 0 bytes, got {offset}")
        key = RunKey.decode(handle.key)
        run_dir = self._key_dir(key)
        if not run_dir.is_dir():  # a handle is made once run.json exists: only a removal takes the directory away
            raise RunGoneError(f"the local executor keeps no record of {key.job_id} attempt {key.attempt}")
        return read_log_chunk(run_dir / LOG, offset)

    def records(self) -> list[RunRecord]:
        """The run directory and working directory of each run of this installation (see
        :func:`~stargate.executors.local_state.run_records`); one shared ``workdir`` is never listed."""
        runs = self.runs_dir / self.installation if self.installation is not None else self.runs_dir
        return run_records(runs, self.work_base if self.workdir is None else None)

    def prune(self, records: Sequence[RunRecord]) -> Pruned:
        """Remove these run and working directories (never one whose runner lives, never through a symbolic
        link a job put there)."""
        runs = self.runs_dir / self.installation if self.installation is not None else self.runs_dir
        return prune_runs(runs, self.work_base if self.workdir is None else None, records)

    def work_dir(self, request: RunRequest) -> Path:
        """The job's working directory (HOME, TMPDIR): ``work_root/[<installation>/]<team>/<job_id>/attempt-<n>``."""
        if self.workdir is not None:
            return self.workdir
        return self.work_base.absolute() / team_dir_name(request.team) / request.job_id / f"attempt-{request.attempt}"

    def launch(self, request: RunRequest) -> dict[str, object]:
        """What the runner starts for ``request`` (the content of ``launch.json``)."""
        work = self.work_dir(request)
        iso = self.isolation
        uid = self.identities.uid_of(request.team) if iso.per_team_users else None
        user = f"stargate-{team_dir_name(request.team)}" if request.team else "stargate-job"
        launch: dict[str, object] = {
            "command": request.command,
            "env": run_environment(request, self.base_environment, work, user),
            "cwd": str(self.workdir) if self.workdir is not None else None,
            "work_root": str(self.work_base.absolute()),
            "work_parts": list(work.relative_to(self.work_base.absolute()).parts) if self.workdir is None else [],
            "work_dir": str(work),
            "uid": uid,
            "gid": uid,
            "sandbox": None,
            "drop": None,
            "env_tool": iso.env,
            "log_limit": self.max_log_bytes,
        }
        if iso.bwrap is not None:
            root = iso.per_team_users
            options = sandbox_args(
                work, root=root, work_fd=WORK_FD if root else None, hidden=self.hidden, network=iso.network
            )
            launch["sandbox"] = [iso.bwrap, *options]
            if root:
                if uid is None or iso.setpriv is None:  # bubblewrap runs as root here: never leave the job root
                    raise LocalExecutorError("users isolation in bubblewrap needs setpriv to drop to the team's uid")
                launch["drop"] = setpriv_args(iso.setpriv, uid, uid)
                launch["account"] = {"name": user, "uid": uid, "home": str(work)}
        return launch

    def _spawn(self, request: RunRequest, run_dir: Path) -> subprocess.Popen[bytes]:
        """Start the runner for ``request`` in a new session, with a minimal environment; what it runs is in
        ``launch.json``; its own errors go to ``runner.log``."""
        write_json_atomically(run_dir / LAUNCH, self.launch(request))
        flags = "-IS" if _HAS_PROC else "-I"  # on Linux the runner needs the standard library only: skip site
        argv = [sys.executable, flags, str(_RUNNER), str(run_dir.absolute()), str(self.grace_s)]
        env = {"PATH": RUNNER_PATH, "LANG": self.base_environment.get("LANG", "C.UTF-8")}
        fd = os.open(run_dir / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "ab") as errors:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
                close_fds=True,
            )
        with self._children_lock:
            self._children[proc.pid] = proc
        return proc

    def _await_record(self, run_dir: Path, proc: subprocess.Popen[bytes]) -> dict[str, object]:
        """Wait for ``run.json`` (written by this runner, or by an earlier one that holds the claim)."""
        deadline = time.monotonic() + self.start_timeout_s
        delay = 0.002
        while time.monotonic() < deadline:
            record = read_json(run_dir / RECORD)
            if record is not None:
                return record
            if proc.poll() is not None and not (run_dir / CLAIM).exists():
                break
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        detail = tail(run_dir / "runner.log") or "no output"
        raise LocalExecutorError(f"the runner for {run_dir.name} of {run_dir.parent.name} did not start: {detail}")

    def _reap(self) -> None:
        """Collect runners of ours that ended, so they do not linger as zombies."""
        with self._children_lock:
            for pid, proc in list(self._children.items()):
                if proc.poll() is not None:
                    del self._children[pid]


def minimal_environment(source: Mapping[str, str]) -> dict[str, str]:
    """What every job starts from: a standard PATH, and the locale and time zone of ``source`` (nothing else of the
    server's environment, which may hold a database password)."""
    env = {"PATH": DEFAULT_PATH, "LANG": source.get("LANG") or "C.UTF-8"}
    env.update({k: source[k] for k in ("LC_ALL", "TZ") if source.get(k)})
    return env


def run_environment(request: RunRequest, base: Mapping[str, str], work_dir: Path, user: str) -> dict[str, str]:
    """The command's environment: ``base`` less ``STARGATE_*``, HOME/TMPDIR/USER, the job's own variables, then
    Stargate's (``STARGATE_RUN_DIR`` and ``PWD`` are the working directory)."""
    env = {k: v for k, v in base.items() if not k.startswith("STARGATE_")}
    env.update(HOME=str(work_dir), TMPDIR=str(work_dir), USER=user, LOGNAME=user)
    env.update(request.environment)
    gpus = ",".join(str(g) for g in request.gpu_ids)
    env.update(
        STARGATE_JOB_ID=request.job_id,
        STARGATE_ATTEMPT=str(request.attempt),
        STARGATE_CLUSTER=request.cluster,
        STARGATE_GPU_IDS=gpus,
        CUDA_VISIBLE_DEVICES=gpus,
        STARGATE_RUN_DIR=str(work_dir),
        PWD=str(work_dir),
    )
    return env


def _check_request(request: RunRequest, isolation: Isolation) -> None:
    """LocalExecutorError for a request this executor must not run (another team than the single one) or cannot
    (a NUL byte, an environment name that is empty or holds ``=``)."""
    if isolation.single_team is not None and request.team != isolation.single_team:
        raise LocalExecutorError(
            f"{request.job_id}: team '{request.team}' may not run jobs on this server's local executor "
            f"(started with --single-team {isolation.single_team})"
        )
    if "\0" in request.command:
        raise LocalExecutorError(f"{request.job_id}: the command holds a NUL byte")
    for name, value in request.environment.items():
        if not name or "=" in name or "\0" in name or "\0" in value:
            raise LocalExecutorError(f"{request.job_id}: environment variable {name!r} is empty, holds '=' or NUL")


def _private_dir(path: Path, mode: int) -> None:
    """Make ``path`` (and its parents) and set its mode to ``mode`` (tightening one that is too open)."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o7777 != mode:
        path.chmod(mode)

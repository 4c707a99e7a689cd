"""The ``slurm`` executor: runs each placed job as a Slurm batch job through sbatch, squeue, scontrol and scancel.

A run of (job id, attempt) is the Slurm job named ``sg-<installation8>-<job_id>-a<attempt>``; its handle key is
``<slurm job id>:<name>``. Its output is ``<log_dir>/<name>.log`` (``sbatch --output``; Slurm writes it on the job's
first node, so for nodes on other machines ``log_dir`` is on a filesystem they share with the server; default
``<home>/runs/slurm/<executor id>``). A server running as root submits each job as the account of its team
(``sbatch --uid``/``--gid``; see :mod:`stargate.executors.slurm_accounts`), never as root unless the fleet file says
``user: root``; a run of another account than the server's writes its output in ``log_dir`` (required then), into a
file the server made for that account alone. The job starts in a fresh private directory its batch script makes under
``work_dir`` (default /tmp), never in the server's state directory. Files, under ``<home>/runs/slurm/<executor id>/``:

- ``jobs/<name>`` — the Slurm job id, written after sbatch answered: a submit after slurmctld forgot the job
  (``MinJobAge``) still never starts a second one;
- ``locks/<n>`` — the lock files of run names (:mod:`stargate.executors.slurm_locks`; 64, never pruned);
- ``withdrawn/<name>`` — written by :meth:`SlurmExecutor.find` when it found no run: a later submit of that attempt
  is refused (the scheduler had moved its job on);
- ``refused/<name>`` — why sbatch refused the job (unknown partition, more GPUs than a node has, a bad environment
  name): its handle key is ``refused:<name>`` and it polls as failed with a reason starting ``cannot start``.

Retention: :meth:`SlurmExecutor.records` lists those files and the logs in ``log_dir`` of this installation's runs
(active while ``squeue`` lists the run's name), :meth:`SlurmExecutor.prune` removes those the server's housekeeping
step lets go (see :mod:`stargate.executors.retention`), and :meth:`SlurmExecutor.logs` of a run with neither a
record nor a log raises :class:`~stargate.executors.base.RunGoneError`. A job's working directory on its node is
its batch script's to remove (it does, when the command ends); Slurm's own records are Slurm's (``MinJobAge``,
slurmdbd's ``PurgeJobAfter``).

Idempotency: submit looks for the name in its own records, then asks ``squeue --name <name> --states=all``, and runs
sbatch only when neither knows it, all under the name's lock (a file lock its sbatch inherits and keeps while it
lives; find takes it too). So neither two threads, nor two servers on one state directory, nor a server restarted
while the sbatch of the server it replaces still runs, submit one attempt twice: the last waits for that sbatch
(at most two commands' timeouts), then finds its job by name. sbatch runs under ``timeout`` and never outlives its
10 s, so it cannot hold a lock for longer. A sbatch killed at its timeout may still have made the job: the next
submit finds it by name once slurmctld has handled the request.

Status: ``scontrol show job -o <id>`` (final states stay there ``MinJobAge`` seconds, 300 by default); once slurmctld
has forgotten the job, ``sacct`` (when the cluster keeps accounting); a job neither knows is lost. A command that
cannot reach slurmctld raises :class:`SlurmUnavailableError` (the scheduler counts an error and polls again): a
controller outage never reads as a lost run.

Jobs run with ``--no-requeue`` (Slurm never restarts a run: Stargate decides) and ``--gres=<gres>:<GPUs per node>``
when the executor names a GRES. Environment: sbatch runs with a few variables of its own (never the server's) and
``--export=ALL``; not ``NONE`` (or 22.05's explicit lists), which makes slurmd load the user's login environment
(``su - <user>``: a slow profile fails the launch). The batch script (:func:`batch_script`) then clears every
variable but Slurm's, and sets a standard PATH, the job's own variables, Slurm's GPU variables again (a job cannot
widen its GPUs) and Stargate's.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors.base import (
    Capabilities,
    Health,
    Pruned,
    RunGoneError,
    RunHandle,
    RunRecord,
    RunRequest,
    RunState,
    RunStatus,
)
from stargate.executors.local_state import read_log_chunk
from stargate.executors.prune_files import names_in, remove_below
from stargate.executors.retention import run_of
from stargate.executors.slurm_accounts import Account, AccountError, JobAccounts, own_log_file, shared_log_dir
from stargate.executors.slurm_commands import (
    SlurmCommands,
    SlurmUnavailableError,
    first_line,
    node_failed,
    parse_fields,
    status_of,
    worst_states,
)
from stargate.executors.slurm_locks import RunLocks

KIND = "slurm"
POLL_TIMEOUT_S = 3.0
"""Longest wait for a poll's ``scontrol show job``, s: a live controller answers in milliseconds, and a dead one
would keep a Slurm client retrying for about 3 × MessageTimeout, holding the scheduling cycle that long. A poll
that times out is an unreachable engine (a failed health check), never a lost run."""
HEALTH_TIMEOUT_S = 5.0
REFUSED = "refused"
RECORD_KINDS = ("jobs", "withdrawn", REFUSED)
"""The directories of per-run record files under the executor's directory."""
LOG_SUFFIX = ".log"
UNSTARTABLE = "cannot start"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JOB_ID = re.compile(r"^\d+$")

__all__ = ["SlurmExecutor", "SlurmExecutorError", "SlurmUnavailableError"]


class SlurmExecutorError(RuntimeError):
    """The Slurm executor will not start a run (the message says why)."""


def run_name(installation: str | None, job_id: str, attempt: int) -> str:
    """The Slurm job name of (job id, attempt): ``sg-<installation8>-<job_id>-a<attempt>``."""
    if not _SAFE.match(job_id) or attempt < 0:
        raise ValueError(f"job id {job_id!r} / attempt {attempt} cannot name a Slurm job")
    return f"sg-{(installation or 'local')[:8]}-{job_id}-a{attempt}"


class SlurmExecutor:
    """Runs jobs as Slurm batch jobs of one Slurm cluster (the commands on the server's machine reach it)."""

    kind = KIND
    CAPABILITIES = Capabilities(images=False, multinode=True, reattach=True, logs=True)
    """Shell commands (no images), over several nodes, found again after a restart, with logs."""

    def __init__(
        self,
        config: SlurmExecutorConfig,
        home: Path,
        installation: str | None = None,
        commands: SlurmCommands | None = None,
        accounts: JobAccounts | None = None,
    ) -> None:
        """``home``: the server's state directory (runs go under ``home/runs/slurm/<executor id>``);
        ``installation``: the database's installation id (its first 8 characters prefix every job name);
        ``accounts``: the accounts jobs run as (default: from ``config`` for this process's uid). SlurmExecutorError
        when those accounts cannot be used here (a root server without ``user``, an account this host does not
        have, a ``log_dir`` they cannot reach)."""
        if installation is not None and not _SAFE.match(installation):
            raise ValueError(f"installation id {installation!r} cannot name a Slurm job")
        self.config = config
        self.id = config.id
        self.installation = installation
        self.capabilities = self.CAPABILITIES
        self.commands = commands or SlurmCommands(config.slurm_conf, config.bin_dir)
        if not _SAFE.match(config.id):
            raise ValueError(f"executor id {config.id!r} cannot name a directory")
        self.dir = Path(home) / "runs" / "slurm" / config.id
        try:
            self.accounts = accounts or JobAccounts.of(config)
            shared = self.accounts.names_others
            self.log_dir = shared_log_dir(config, self.accounts) if shared else Path(config.log_dir or self.dir)
        except AccountError as exc:
            raise SlurmExecutorError(str(exc)) from None
        self._log_mode = 0o711 if shared else 0o700
        # A waiter outwaits the holder's squeue and sbatch; a lock that is not free by then is an error this cycle.
        where = f"slurm ({self.commands.describe()})"
        self._locks = RunLocks(self.dir / "locks", 2 * self.commands.timeout_s + 1, where)

    @classmethod
    def from_config(cls, config: SlurmExecutorConfig, settings: object) -> Self:
        """The executor for ``config`` under the server's settings (``home``, ``installation_id``)."""
        home = Path(getattr(settings, "home"))  # noqa: B009 - settings is any object with a home
        return cls(config, home, getattr(settings, "installation_id", None))

    # --- files -----------------------------------------------------------------------------------------------

    def _path(self, kind: str, name: str) -> Path:
        return self.dir / kind / name if kind else self.log_dir / f"{name}.log"

    def _read(self, kind: str, name: str) -> str | None:
        try:
            return self._path(kind, name).read_text().strip()
        except FileNotFoundError:
            return None

    def _write(self, kind: str, name: str, text: str) -> None:
        path = self._path(kind, name)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(text + "\n")
        os.replace(tmp, path)

    def _withdraw(self, name: str) -> None:
        path = self._path("withdrawn", name)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))

    # --- lookups ---------------------------------------------------------------------------------------------

    def _known(self, name: str) -> RunHandle | None:
        """The run of ``name`` from this executor's records, else from squeue; None when Slurm has no such job."""
        job = self._read("jobs", name)
        if job is not None and _JOB_ID.match(job):
            return RunHandle(self.id, f"{job}:{name}")
        if self._read(REFUSED, name) is not None:
            return RunHandle(self.id, f"{REFUSED}:{name}")
        done = self.commands.run("squeue", ["--name", name, "--states=all", "-h", "-o", "%i"])
        if done.returncode != 0:
            raise SlurmUnavailableError(f"slurm ({self.commands.describe()}): squeue: {first_line(done.stderr)}")
        ids = sorted((int(i) for i in done.stdout.split() if _JOB_ID.match(i)), key=int)
        if not ids:
            return None
        self._write("jobs", name, str(ids[0]))
        return RunHandle(self.id, f"{ids[0]}:{name}")

    def find(self, job_id: str, attempt: int) -> RunHandle | None:
        """The run of (job id, attempt) if Slurm (or this executor's records) know it; never starts one. With none,
        the attempt is withdrawn: a later :meth:`submit` of it is refused. Raises SlurmUnavailableError when Slurm
        does not answer, or a submit of it is still in sbatch (it cannot tell then)."""
        name = run_name(self.installation, job_id, attempt)
        with self._locks.hold(name):
            handle = self._known(name)
            if handle is None:
                self._withdraw(name)
            return handle

    # --- submit ----------------------------------------------------------------------------------------------

    def submit(self, request: RunRequest) -> RunHandle:
        """Submit the run with sbatch, or return the run already submitted for this (job id, attempt).

        A job Slurm refuses (unknown partition or account, more GPUs than a node has) and a request it cannot pass
        (a NUL byte, a bad environment name) get a handle that polls as failed, ``cannot start: <why>``.
        SlurmExecutorError for a withdrawn attempt or an account of its team this host no longer has (retried: an
        admin may create it); SlurmUnavailableError when Slurm does not answer or another submit of the name is still
        in sbatch."""
        name = run_name(self.installation, request.job_id, request.attempt)
        with self._locks.hold(name) as lock:
            if self._path("withdrawn", name).exists():
                raise SlurmExecutorError(f"{request.job_id} attempt {request.attempt} was withdrawn; it never starts")
            handle = self._known(name)
            if handle is not None:
                return handle
            problem = _bad_request(request)
            if problem is not None:
                return self._refuse(name, problem)
            try:
                account = self.accounts.for_team(request.team)
            except AccountError as exc:  # an account removed since the build: mended by an admin, so retried
                raise SlurmExecutorError(f"{request.job_id} attempt {request.attempt}: {exc}") from None
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.log_dir.mkdir(mode=self._log_mode, parents=True, exist_ok=True)
            if account is not None:
                own_log_file(self._path("", name), account)
            script = batch_script(request, self.config.work_dir, name)
            args = self.sbatch_args(request, name, account)
            done = self.commands.run("sbatch", args, stdin=script, cwd=Path("/"), hold=lock)
            job = done.stdout.strip().split(";")[0]
            if done.returncode != 0 or not _JOB_ID.match(job):
                return self._refuse(name, first_line(done.stderr or done.stdout).removeprefix("sbatch: error: "))
            self._write("jobs", name, job)
            return RunHandle(self.id, f"{job}:{name}")

    def _refuse(self, name: str, why: str) -> RunHandle:
        self._write(REFUSED, name, why)
        return RunHandle(self.id, f"{REFUSED}:{name}")

    def sbatch_args(self, request: RunRequest, name: str, account: Account | None = None) -> list[str]:
        """sbatch's options for ``request`` (the batch script comes on stdin), run as ``account`` (None: as the
        server's user)."""
        nodes = max(request.nodes, 1)
        args = ["--parsable", "--no-requeue", f"--job-name={name}", f"--nodes={nodes}", "--ntasks-per-node=1"]
        if account is not None:
            args += [f"--uid={account.name}", f"--gid={account.gid}"]
        args += [f"--output={self._path('', name)}", "--open-mode=append", "--export=ALL"]
        args.append(f"--chdir={self.config.work_dir}")
        per_node = request.gpus_per_node or -(-request.gpus // nodes)
        if self.config.gres and per_node > 0:
            args.append(f"--gres={self.config.gres}:{per_node}")
        if self.config.partition:
            args.append(f"--partition={self.config.partition}")
        if self.config.account:
            args.append(f"--account={self.config.account}")
        return args

    # --- status, cancel, logs --------------------------------------------------------------------------------

    def poll(self, handle: RunHandle) -> RunStatus:
        """The run's state from Slurm; SlurmUnavailableError when slurmctld does not answer (never lost then)."""
        job, name = _decode(handle.key)
        if job == REFUSED:
            return RunStatus(RunState.FAILED, reason=f"{UNSTARTABLE}: {self._read(REFUSED, name) or 'sbatch refused'}")
        done = self.commands.run("scontrol", ["show", "job", "-o", job], timeout_s=POLL_TIMEOUT_S)
        if done.returncode == 0 and done.stdout.strip():
            fields = parse_fields(done.stdout.splitlines()[0])
            if fields.get("JobName") not in {None, name}:  # the id was reused: slurmctld lost its state
                return self._accounted(job, name)
            return status_of(fields.get("JobState", ""), fields.get("ExitCode", ""), fields.get("Reason", ""), job)
        if "invalid job id" not in (done.stderr + done.stdout).lower():
            raise SlurmUnavailableError(f"slurm ({self.commands.describe()}): scontrol: {first_line(done.stderr)}")
        return self._accounted(job, name)

    def _accounted(self, job: str, name: str) -> RunStatus:
        """The status sacct keeps of a job slurmctld forgot; interrupted when accounting does not know it either."""
        try:
            done = self.commands.run("sacct", ["-n", "-P", "-X", "-j", job, "-o", "JobName,State,ExitCode,Reason"])
        except SlurmUnavailableError:
            done = None  # no accounting (or slurmdbd down): the job is gone from slurmctld, which did answer
        for line in done.stdout.splitlines() if done is not None and done.returncode == 0 else []:
            parts = line.split("|")
            if len(parts) >= 3 and parts[0] == name:
                return status_of(parts[1], parts[2], parts[3] if len(parts) > 3 else "", job)
        # Slurm forgot the run (slurmctld lost its state, no accounting): the engine's doing, not the job's.
        return RunStatus(RunState.INTERRUPTED, reason=f"Slurm has no job {job} ({name}) any more")

    def cancel(self, handle: RunHandle) -> None:
        """scancel the run; idempotent (a finished or unknown job is left alone)."""
        job, _ = _decode(handle.key)
        if job == REFUSED:
            return
        self.commands.run("scancel", [job])  # its errors for an ended job (already completed, invalid id) are fine

    def logs(self, handle: RunHandle, offset: int = 0) -> tuple[str, int]:
        """Log text from byte ``offset`` (at most 1 MiB, cut at a UTF-8 boundary) and the byte offset to go on."""
        if offset < 0:
            raise ValueError(f"log offset must be ≥ 0 bytes, got {offset}")
        job, name = _decode(handle.key)
        path = self._path("", name)
        if not path.exists() and not self._path("jobs" if job != REFUSED else REFUSED, name).exists():
            raise RunGoneError(f"the Slurm executor '{self.id}' keeps no record of {name}")
        return read_log_chunk(path, offset)

    # --- retention -------------------------------------------------------------------------------------------

    def _prefix(self) -> str:
        return f"sg-{(self.installation or 'local')[:8]}-"

    def records(self) -> list[RunRecord]:
        """This installation's ``jobs/``, ``withdrawn/`` and ``refused/`` files and logs (``log/<name>``), each
        active while ``squeue`` lists a pending or running job of its name; SlurmUnavailableError when squeue does
        not answer (nothing is pruned then)."""
        prefix = self._prefix()
        named: list[tuple[str, str]] = [(kind, n) for kind in RECORD_KINDS for n in names_in(self.dir / kind)]
        logs = [n for n in names_in(self.log_dir) if n.endswith(LOG_SUFFIX) and n.startswith(prefix)]
        named += [("log", n.removesuffix(LOG_SUFFIX)) for n in logs]
        runs = [(kind, name, run) for kind, name in named if (run := run_of(name, prefix)) is not None]
        if not runs:
            return []
        done = self.commands.run("squeue", ["-a", "-h", "-o", "%j"])
        if done.returncode != 0:
            raise SlurmUnavailableError(f"slurm ({self.commands.describe()}): squeue: {first_line(done.stderr)}")
        going = set(done.stdout.split())
        return [RunRecord(job, attempt, f"{kind}/{name}", name in going) for kind, name, (job, attempt) in runs]

    def prune(self, records: Sequence[RunRecord]) -> Pruned:
        """Remove these record files and logs; a record of another installation, or not of this executor, is left
        alone (a problem)."""
        removed, problems = 0, []
        for record in records:
            kind, _, name = record.what.partition("/")
            if kind not in (*RECORD_KINDS, "log") or not _SAFE.match(name) or run_of(name, self._prefix()) is None:
                problems.append(f"{record.what}: not a record of the Slurm executor '{self.id}'")
                continue
            where, part = (self.log_dir, f"{name}{LOG_SUFFIX}") if kind == "log" else (self.dir, f"{kind}/{name}")
            try:
                removed += remove_below(where, part.split("/"))
            except (OSError, ValueError) as exc:
                problems.append(f"{record.what}: {exc}")
        return Pruned(removed, tuple(problems))

    # --- health ----------------------------------------------------------------------------------------------

    def health(self) -> Health:
        """slurmctld's answer to ``scontrol ping`` and each node's state from ``sinfo`` (at most ~5 s); never
        raises."""
        where = f"slurm ({self.commands.describe()})"
        try:
            ping = self.commands.run("scontrol", ["ping"], timeout_s=HEALTH_TIMEOUT_S / 2)
            if ping.returncode != 0 or " is UP" not in ping.stdout:
                why = first_line(ping.stdout or ping.stderr)
                return Health(reachable=False, reason=f"{where}: {why}")
            info = self.commands.run("sinfo", ["-N", "-h", "-o", "%N %T"], timeout_s=HEALTH_TIMEOUT_S / 2)
        except SlurmUnavailableError as exc:
            return Health(reachable=False, reason=str(exc) if str(exc).startswith("slurm (") else f"{where}: {exc}")
        except Exception as exc:  # a health check never raises
            return Health(reachable=False, reason=f"{where}: {type(exc).__name__}: {exc}")
        if info.returncode != 0:
            return Health(reachable=False, reason=f"{where}: sinfo: {first_line(info.stderr)}")
        states = worst_states(info.stdout.splitlines())
        failed = sorted(node for node, state in states.items() if node_failed(state))
        reason = ""
        if failed:
            shown = ", ".join(f"{n} {states[n]}" for n in failed[:5]) + (" …" if len(failed) > 5 else "")
            reason = f"{where}: {len(failed)} of {len(states)} nodes failed ({shown})"
        return Health(reachable=True, reason=reason, nodes=len(states), failed_nodes=len(failed))


GPU_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
    "NVIDIA_VISIBLE_DEVICES",
)
"""Variables that say which GPUs a process may use: Slurm's values (or none) win over the job's."""
JOB_PATH = "/usr/local/bin:/usr/bin:/bin"
"""PATH of a job that does not set one."""
_KEPT = "SLURM_*|SLURMD_*|ENVIRONMENT|" + "|".join(GPU_VARIABLES)


def batch_script(request: RunRequest, work_dir: str = "/tmp", name: str = "sg-run") -> str:
    """The batch script: keeps only Slurm's variables, makes a private working directory under ``work_dir`` (also
    HOME and TMPDIR), exports a standard PATH and the job's variables, then Slurm's GPU variables again (or none)
    and Stargate's, runs the command with bash and removes the directory."""
    env = {k: v for k, v in request.environment.items() if not k.startswith("STARGATE_")}
    ours = {
        "STARGATE_JOB_ID": request.job_id,
        "STARGATE_ATTEMPT": str(request.attempt),
        "STARGATE_CLUSTER": request.cluster,
        "STARGATE_GPUS": str(request.gpus),
        "STARGATE_NODES": str(request.nodes),
        "STARGATE_GPUS_PER_NODE": str(request.gpus_per_node),
    }
    gpu = " ".join(GPU_VARIABLES)
    lines = [
        "#!/bin/bash",
        f'for _sg_v in $(compgen -e); do case "$_sg_v" in {_KEPT}) ;; *) unset "$_sg_v" ;; esac; done',
        f"_sg_gpu=$(declare -p {gpu} 2>/dev/null)",
        f"export PATH={JOB_PATH}",
        f"_sg_dir=$(mktemp -d {shlex.quote(work_dir.rstrip('/') or '/')}/{name}.XXXXXX) || exit 1",
        'cd "$_sg_dir" || exit 1',
        'export HOME="$_sg_dir" TMPDIR="$_sg_dir" STARGATE_RUN_DIR="$_sg_dir" LANG=C.UTF-8',
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        f"unset {gpu}",
        'eval "$_sg_gpu"',
        *(f"export {k}={shlex.quote(v)}" for k, v in ours.items()),
        "unset _sg_v _sg_gpu",
        f"/bin/bash -c {shlex.quote(request.command)}",
        "_sg_code=$?",
        'cd / && rm -rf -- "$_sg_dir"',
        'exit "$_sg_code"',
    ]
    return "\n".join(lines) + "\n"


def _bad_request(request: RunRequest) -> str | None:
    """Why ``request`` cannot be passed to Slurm (NUL bytes, environment names a shell cannot export), or None."""
    if not request.command.strip():
        return "the command is empty"
    if "\0" in request.command:
        return "the command holds a NUL byte"
    for name, value in request.environment.items():
        if not _ENV_NAME.match(name):
            return f"environment variable name {name!r} is not letters, digits and '_' (not starting with a digit)"
        if "\0" in value:
            return f"environment variable {name} holds a NUL byte"
    return None


def _decode(key: str) -> tuple[str, str]:
    """(Slurm job id or ``refused``, job name) of a handle key; ValueError for a key this executor never made."""
    job, _, name = key.partition(":")
    if not (_JOB_ID.match(job) or job == REFUSED) or not _SAFE.match(name):
        raise ValueError(f"{key!r} is not a Slurm run handle (<job id>:<name>)")
    return job, name

"""What a local run left behind, read back: its handle key, its final status from ``exit.json`` or from the process
table, its claim, the small file and signal helpers the local executor uses to read and stop runs, and the listing
and removal of runs' directories for retention (see :mod:`stargate.executors.retention`)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from stargate.executors.base import MAX_LOG_CHUNK, Pruned, RunRecord, RunState, RunStatus
from stargate.executors.local_runner import CLAIM, EXIT, RECORD, process_start_marker
from stargate.executors.prune_files import dirs_in, remove_below

WITHDRAWN = "withdrawn"
"""What :meth:`~stargate.executors.local.LocalExecutor.find` writes in ``claim`` to withdraw a run that never
started."""
_ATTEMPT = re.compile(r"^attempt-(\d{1,9})$")
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


@dataclass(frozen=True, slots=True)
class RunKey:
    """What a local run handle's key holds: the run's identity and the runner process (pid + start marker)."""

    job_id: str
    attempt: int
    pid: int
    start: str | None
    installation: str | None = None
    """The installation (database) whose run this is: its runs live under ``RUNS_DIR/<installation>/``."""

    def encode(self) -> str:
        """The key as compact JSON (the handle's ``key``)."""
        data: dict[str, object] = {"job_id": self.job_id, "attempt": self.attempt, "pid": self.pid}
        data["start"] = self.start
        if self.installation is not None:
            data["installation"] = self.installation
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, key: str) -> RunKey:
        """Parse a handle key; ValueError with the reason when it is not one of ours."""
        try:
            data = json.loads(key)
            installation = data.get("installation")
            return cls(
                str(data["job_id"]),
                int(data["attempt"]),
                int(data["pid"]),
                data["start"],
                str(installation) if installation is not None else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a local run handle key: {key!r} ({exc})") from exc


def final_status(done: Mapping[str, object], *, cancelled: bool) -> RunStatus:
    """The status of a run whose runner recorded its end (``error``: the command could not be started)."""
    code = int(str(done.get("exit_code")))
    if done.get("error"):
        return RunStatus(RunState.FAILED, exit_code=code, reason=f"cannot start the command: {done['error']}")
    if code == 0:
        return RunStatus(RunState.SUCCEEDED, exit_code=0)
    if cancelled:
        return RunStatus(RunState.CANCELLED, exit_code=code, reason="cancelled")
    signum = done.get("signal")
    if isinstance(signum, int):
        return RunStatus(RunState.FAILED, exit_code=code, reason=f"killed by signal {signum} ({signal_name(signum)})")
    return RunStatus(RunState.FAILED, exit_code=code, reason=f"exit code {code}")


def vanished_status(key: RunKey, *, cancelled: bool) -> RunStatus:
    """The status of a run whose runner is gone (or whose pid is now another process's) with no exit code."""
    if cancelled:
        return RunStatus(RunState.CANCELLED, reason="cancelled; killed before it recorded an exit code")
    if process_start_marker(key.pid) is not None and not is_zombie(key.pid):
        why = f"pid {key.pid} now belongs to another process (start time differs: pid reused)"
    else:
        why = f"process {key.pid} is gone"
    return RunStatus(RunState.LOST, reason=f"{why}; the run ended without recording an exit code")


def is_alive(pid: int, start: object) -> bool:
    """True when ``pid`` is a live (non-zombie) process started at ``start`` (so not a reused pid)."""
    marker = process_start_marker(pid)
    return marker is not None and marker == start and not is_zombie(pid)


def is_zombie(pid: int) -> bool:
    """True when ``pid`` has ended but was not reaped yet (or is gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def signal_pid(pid: int, sig: int) -> None:
    """Send ``sig`` to one process; one that just ended is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to a process group; one that just ended is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9, or ``signal N`` for an unknown number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def utf8_boundary(data: bytes) -> int:
    """Length of ``data`` without a trailing, incomplete UTF-8 sequence (so a character is never split)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: keep looking for the lead byte
        width = 1 if byte < 0xC0 else 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
        return len(data) - back if back < width else len(data)
    return len(data)


def read_json(path: Path) -> dict[str, object] | None:
    """A JSON object from ``path``, or None when the file is missing (written atomically, so never partial)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def tail(path: Path, limit: int = 400) -> str:
    """The last ``limit`` characters of a small text file, on one line."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return " ".join(text[-limit:].split())


def read_log_chunk(path: Path, offset: int) -> tuple[str, int]:
    """Log text of the file at ``path`` from byte ``offset`` (at most :data:`MAX_LOG_CHUNK` bytes, cut at a UTF-8
    character boundary) and the offset to continue from; nothing yet when the file does not exist."""
    try:
        with path.open("rb") as log:
            if offset >= os.fstat(log.fileno()).st_size:  # at or past the end (a read there may be EINVAL)
                return "", offset
            log.seek(offset)
            data = log.read(MAX_LOG_CHUNK)
    except FileNotFoundError:
        return "", offset
    cut = utf8_boundary(data)
    return data[:cut].decode("utf-8", errors="replace"), offset + cut


def withdraw(run_dir: Path) -> bool:
    """Claim the run as withdrawn (exclusive create, as the runner claims); False when it is claimed already."""
    try:
        fd = os.open(run_dir / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as claim:
        claim.write(WITHDRAWN)
    return True


def claimant(run_dir: Path) -> str | None:
    """What ``claim`` holds (the runner's pid, or ``withdrawn``); None when the run is not claimed."""
    try:
        return (run_dir / CLAIM).read_text().strip()
    except FileNotFoundError:
        return None


def pid_alive(text: str | None) -> bool:
    """True when ``text`` is the pid of a live process (an empty claim is a runner that is writing it now)."""
    if text == "":
        return True
    if text is None or not text.isdigit():
        return False
    return process_start_marker(int(text)) is not None and not is_zombie(int(text))


def attempt_of(name: str) -> int | None:
    """The attempt an ``attempt-<n>`` directory is of; None for another name."""
    found = _ATTEMPT.match(name)
    return int(found.group(1)) if found else None


def run_going(run_dir: Path) -> bool:
    """True while the run in ``run_dir`` may still be going: no ``exit.json`` and its runner alive (or a runner
    holding the claim before it wrote ``run.json``); True as well when its record cannot be read."""
    try:
        if (run_dir / EXIT).exists():
            return False
        record = read_json(run_dir / RECORD)
        if record is None:
            holder = claimant(run_dir)
            return holder not in (None, WITHDRAWN) and pid_alive(holder)
        start = record.get("start")
        return is_alive(int(str(record["pid"])), start if isinstance(start, str) else None)
    except (OSError, ValueError, KeyError):
        return True


def run_records(runs: Path, work: Path | None) -> list[RunRecord]:
    """Each run directory ``runs/<job>/attempt-<n>`` (``run/<job>/attempt-<n>``) and working directory
    ``work/<team>/<job>/attempt-<n>`` (``work/...``; ``work`` None: none) of one installation; a run is active while
    :func:`run_going`, its working directory with it. Symbolic links are never followed."""
    found: list[RunRecord] = []
    going: dict[tuple[str, int], bool] = {}
    for job_id in dirs_in(runs):
        for part in dirs_in(runs / job_id) if _JOB_ID.match(job_id) else []:
            attempt = attempt_of(part)
            if attempt is not None:
                going[(job_id, attempt)] = active = run_going(runs / job_id / part)
                found.append(RunRecord(job_id, attempt, f"run/{job_id}/{part}", active))
    if work is None:
        return found
    for team in dirs_in(work):
        for job_id in dirs_in(work / team):
            for part in dirs_in(work / team / job_id):
                attempt = attempt_of(part)
                if attempt is not None:
                    active = going.get((job_id, attempt), False)
                    found.append(RunRecord(job_id, attempt, f"work/{team}/{job_id}/{part}", active))
    return found


def prune_runs(runs: Path, work: Path | None, records: Sequence[RunRecord]) -> Pruned:
    """Remove the run and working directories ``records`` name (see :func:`run_records`), and each job's directory
    left empty; never a run that :func:`run_going`, never through a symbolic link."""
    removed, problems = 0, []
    for record in records:
        kind, _, rest = record.what.partition("/")
        parts = rest.split("/")
        try:
            if kind == "run" and len(parts) == 2 and attempt_of(parts[1]) is not None:
                if not run_going(runs / parts[0] / parts[1]):
                    removed += remove_below(runs, parts, parents=1)
            elif kind == "work" and work is not None and len(parts) == 3 and attempt_of(parts[2]) is not None:
                if not (runs / parts[1] / parts[2]).exists() or not run_going(runs / parts[1] / parts[2]):
                    removed += remove_below(work, parts, parents=1)
            else:
                problems.append(f"{record.what}: not a record of the local executor")
        except (OSError, ValueError) as exc:
            problems.append(f"{record.what}: {exc}")
    return Pruned(removed, tuple(problems))

"""The small wrapper the local executor starts for every run: claims the run, runs the command, records its end.

Started as ``python -I local_runner.py RUN_DIR GRACE_S CWD COMMAND`` in a session of its own (so a SIGKILL of the
server leaves it running). It uses the standard library only, so it starts fast. In ``RUN_DIR`` it:

1. creates ``claim`` with O_EXCL — a second runner for the same (job, attempt) finds it and exits without running
   anything (this is what makes a repeated submit harmless);
2. starts ``/bin/sh -c COMMAND`` in a new process group, stdout and stderr appended to ``output.log``;
3. writes ``run.json`` atomically: its own pid and start marker (pid reuse detection), the command's pid and group;
4. on SIGTERM forwards SIGTERM to the command's process group and sends SIGKILL to the group ``GRACE_S`` seconds
   later if it is still there;
5. when the command ends, kills what is left of its process group and writes ``exit.json`` atomically
   (``{"exit_code", "signal", "finished_at"}``), so the exit code is known even if the server was down meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

CLAIM = "claim"
RECORD = "run.json"
EXIT = "exit.json"
LOG = "output.log"
CANCEL = "cancel_requested"


def process_start_marker(pid: int) -> str | None:
    """A string that identifies the process ``pid`` across pid reuse (its start time), or None if it is gone.

    On Linux this is the start time in clock ticks since boot from ``/proc/PID/stat`` (exact, immune to wall-clock
    changes); elsewhere psutil's creation time rounded to 10 ms.
    """
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        fields = text[text.rindex(")") + 2 :].split()
        return f"ticks:{fields[19]}"
    return _portable_start_marker(pid)


def _portable_start_marker(pid: int) -> str | None:
    """Start marker from psutil on systems without ``/proc``."""
    import psutil  # only off Linux: keeps the runner's start-up to the standard library

    try:
        return f"time:{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


def write_json_atomically(path: Path, data: Mapping[str, object], durable: bool = False) -> None:
    """Write ``data`` as JSON to ``path`` so that readers see either nothing or the whole file; ``durable`` also
    forces it to disk before the rename (it then survives a power cut)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as handle:
        json.dump(data, handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def utc_now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat()


def exit_code_of(returncode: int) -> tuple[int, int | None]:
    """A shell-style exit code (128 + signal for a signalled process) and the signal number, if any."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


class _Terminator:
    """Forwards SIGTERM to the command's process group and escalates to SIGKILL after the grace period."""

    def __init__(self, pgid: int, grace_s: float) -> None:
        self.pgid = pgid
        self.grace_s = grace_s
        self.timer: threading.Timer | None = None

    def on_signal(self, signum: int, _frame: object) -> None:
        """Signal handler: forward once, then arm the SIGKILL timer."""
        _kill_group(self.pgid, signal.SIGTERM)
        if self.timer is None:
            self.timer = threading.Timer(self.grace_s, _kill_group, (self.pgid, signal.SIGKILL))
            self.timer.daemon = True
            self.timer.start()


def _kill_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to a process group; a group that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _claim(run_dir: Path) -> bool:
    """Create the claim file exclusively; False when another runner already claimed this run."""
    try:
        fd = os.open(run_dir / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _start(run_dir: Path, cwd: Path, command: str) -> subprocess.Popen[bytes]:
    """Start the command under ``/bin/sh`` in a new process group, output appended to the run's log."""
    with (run_dir / LOG).open("ab") as log:
        return subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )


def _record_failed_start(run_dir: Path, command: str, exc: OSError) -> None:
    """Record a command that could not be started as a run that ended with exit code 127 and the error."""
    me = os.getpid()
    record = {"pid": me, "start": process_start_marker(me), "child_pid": None, "pgid": None, "command": command}
    write_json_atomically(run_dir / RECORD, {**record, "started_at": utc_now()})
    with (run_dir / LOG).open("a") as log:
        log.write(f"stargate: cannot start the command: {exc}\n")
    write_json_atomically(
        run_dir / EXIT, {"exit_code": 127, "signal": None, "finished_at": utc_now(), "error": str(exc)}
    )


def run(run_dir: Path, grace_s: float, cwd: Path, command: str) -> int:
    """Run ``command`` for the run in ``run_dir``; return the runner's own exit status (0 unless it failed)."""
    if not _claim(run_dir):
        return 0
    early: list[int] = []  # a SIGTERM before the command's group exists is kept, then forwarded
    signal.signal(signal.SIGTERM, lambda signum, _frame: early.append(signum))  # not SIG_IGN: exec would keep it
    try:
        child = _start(run_dir, cwd, command)
    except OSError as exc:
        _record_failed_start(run_dir, command, exc)
        return 0
    terminator = _Terminator(child.pid, grace_s)
    signal.signal(signal.SIGTERM, terminator.on_signal)
    me = os.getpid()
    record = {
        "pid": me,
        "start": process_start_marker(me),
        "child_pid": child.pid,
        "child_start": process_start_marker(child.pid),
        "pgid": child.pid,
        "started_at": utc_now(),
        "command": command,
    }
    write_json_atomically(run_dir / RECORD, record)
    if early or (run_dir / CANCEL).exists():  # cancelled before the record existed
        terminator.on_signal(signal.SIGTERM, None)
    returncode = child.wait()
    _kill_group(child.pid, signal.SIGKILL)  # a job's leftover background processes end with it
    code, signum = exit_code_of(returncode)
    write_json_atomically(run_dir / EXIT, {"exit_code": code, "signal": signum, "finished_at": utc_now()}, True)
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``RUN_DIR GRACE_S CWD COMMAND``."""
    if len(argv) != 4:
        sys.stderr.write("usage: local_runner.py RUN_DIR GRACE_S CWD COMMAND\n")
        return 2
    run_dir, grace_s, cwd, command = argv
    return run(Path(run_dir), float(grace_s), Path(cwd), command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

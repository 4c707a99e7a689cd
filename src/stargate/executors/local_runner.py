"""The small wrapper the local executor starts for every run: claims the run, runs the command, records its end.

Started as ``python -I local_runner.py RUN_DIR GRACE_S`` in a session of its own (so a SIGKILL of the server leaves
it running), with a minimal environment: what to run is in ``RUN_DIR/launch.json`` (written by the executor, 0600).
It uses the standard library only, so it starts fast. In ``RUN_DIR`` it:

1. creates ``claim`` with O_EXCL — a second runner for the same (job, attempt) finds it and exits without running
   anything (this is what makes a repeated submit harmless);
2. makes the job's working directory (``WORK_ROOT/<team>/<job>/attempt-<n>``, 0700, owned by the team's uid in
   ``users`` mode) one component at a time without following symlinks, and enters it;
3. starts ``/bin/sh -c COMMAND`` in a new process group — as the team's uid, and/or inside bubblewrap, as the
   launch file says — with stdout and stderr appended to ``output.log`` through the file descriptor it passes (the
   job never gets the path); the job's environment is set by the last step, never given to a privileged one;
4. writes ``run.json`` atomically: its own pid and start marker (pid reuse detection), the command's pid and group;
5. on SIGTERM forwards SIGTERM to the command's process group and sends SIGKILL to the group ``GRACE_S`` seconds
   later if it is still there;
6. when the command ends, kills what is left of its process group and writes ``exit.json`` atomically
   (``{"exit_code", "signal", "finished_at"}``), so the exit code is known even if the server was down meanwhile.

Every file it writes is private to its own user (0600); in ``users`` mode it keeps running as root, so it can signal
the job's group and write ``exit.json`` whatever the job does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CLAIM = "claim"
RECORD = "run.json"
EXIT = "exit.json"
LOG = "output.log"
CANCEL = "cancel_requested"
LAUNCH = "launch.json"
WORK_FD = "{work_fd}"
"""Stands, in the launch file's sandbox options, for the descriptor of the job's working directory."""
RUNNER_PATH = "/usr/local/bin:/usr/bin:/bin"


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600), "w") as handle:
        json.dump(data, handle)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def utc_now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat()


def exit_code_of(returncode: int, sandboxed: bool = False) -> tuple[int, int | None]:
    """A shell-style exit code (128 + signal for a signalled process) and the signal number, if any.

    ``sandboxed``: bubblewrap reports a command killed by signal N as exit code 128 + N, read back as the signal
    (so a command that itself exits with 129 to 192 in a sandbox reads as signalled)."""
    if returncode < 0:
        return 128 - returncode, -returncode
    if sandboxed and 128 < returncode <= 128 + 64:
        return returncode, returncode - 128
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
        fd = os.open(run_dir / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _open_dir(parent: int, name: str, owner: tuple[int, int] | None) -> int:
    """Open (making it first, 0700) the directory ``name`` under the open directory ``parent`` without following a
    symlink; chown it to ``owner`` (uid, gid) when given. Returns its descriptor."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    info = os.fstat(fd)
    if owner is not None and (info.st_uid, info.st_gid) != owner:
        os.fchown(fd, *owner)
    if info.st_mode & 0o7777 != 0o700:
        os.fchmod(fd, 0o700)
    return fd


def _enter_work_dir(launch: Mapping[str, Any]) -> int | None:
    """Make and enter the job's working directory; its descriptor (None for an explicit ``cwd``)."""
    if launch.get("cwd"):
        os.chdir(str(launch["cwd"]))
        return None
    uid, gid = launch.get("uid"), launch.get("gid")
    owner = (int(uid), int(gid)) if uid is not None and gid is not None else None
    fd = os.open(str(launch["work_root"]), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    for name in launch["work_parts"]:
        if not name or "/" in name or name in {".", ".."}:
            raise OSError(f"bad working directory component {name!r}")
        inner = _open_dir(fd, str(name), owner)
        os.close(fd)
        fd = inner
    os.fchdir(fd)
    return fd


def _argv(launch: Mapping[str, Any], work_fd: int | None) -> tuple[list[str], tuple[int, ...]]:
    """The command line to start, and the descriptors it must inherit."""
    shell = ["/bin/sh", "-c", str(launch["command"])]
    sandbox = launch.get("sandbox")
    if not sandbox:
        return shell, ()
    fds: tuple[int, ...] = ()
    args = []
    for arg in sandbox:
        if arg == WORK_FD:
            if work_fd is None:
                raise OSError("the sandbox needs the working directory's descriptor")
            arg, fds = str(work_fd), (work_fd,)
        args.append(str(arg))
    account = launch.get("account")
    if account:  # the team's uid has no account on the host: give it one inside (whoami, getpass, ssh want one)
        for path, line in _account_lines(account).items():
            fd = _data_fd(Path(path), line)
            args += ["--perms", "0644", "--ro-bind-data", str(fd), path]
            fds += (fd,)
    env_fd = _environment_fd(launch.get("env") or {})
    fds += (env_fd,)
    chdir = ["-C", str(launch["work_dir"])] if launch.get("work_dir") else []
    inner = [str(launch["env_tool"]), "-i", *chdir, "--", "/bin/sh", "-c", ENV_LOADER, "stargate-env", str(env_fd)]
    drop = launch.get("drop") or []
    return [*args, "--", *([*drop, "--"] if drop else []), *inner, str(launch["command"])], fds


ENV_LOADER = '. "/dev/fd/$1" || exit 126; eval "exec $1<&-"; exec /bin/sh -c "$2"'
"""The last step in a sandbox, already as the job's uid with an empty environment: export the job's variables from
the descriptor ``$1`` (never from arguments, which every user can read in /proc), close it, run the command ``$2``."""
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _environment_fd(env: Mapping[str, Any]) -> int:
    """A read-only descriptor (below 10, for the loader's ``exec N<&-``) of ``export NAME='value'`` lines."""
    lines = []
    for name, value in env.items():
        if not _NAME.match(str(name)):
            raise OSError(f"environment variable {name!r} is not a shell name")
        quoted = str(value).replace("'", "'\\''")
        lines.append(f"export {name}='{quoted}'\n")
    memfd = os.memfd_create("stargate-env", os.MFD_CLOEXEC)
    try:
        os.write(memfd, "".join(lines).encode())
        reader = os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY | os.O_CLOEXEC)  # the job cannot write its copy
    finally:
        os.close(memfd)
    low = fcntl.fcntl(reader, fcntl.F_DUPFD, 3)  # inheritable: subprocess's pass_fds keeps it open for the job
    os.close(reader)
    if low > 9:
        os.close(low)
        raise OSError(f"no descriptor below 10 free for the job's environment (got {low})")
    return low


def _account_lines(account: Mapping[str, Any]) -> dict[str, str]:
    """The /etc/passwd and /etc/group lines of the job's account ``{"name", "uid", "home"}`` (gid = uid)."""
    name, uid, home = str(account["name"]), int(account["uid"]), str(account["home"])
    return {"/etc/passwd": f"{name}:x:{uid}:{uid}::{home}:/bin/sh\n", "/etc/group": f"{name}:x:{uid}:\n"}


def _data_fd(path: Path, line: str) -> int:
    """A descriptor (at offset 0) of ``path``'s content plus ``line``, for bubblewrap's ``--ro-bind-data``."""
    try:
        content = path.read_bytes()
    except OSError:
        content = b""
    if content and not content.endswith(b"\n"):
        content += b"\n"
    fd = os.memfd_create(path.name, 0)  # not CLOEXEC: bubblewrap reads it
    os.write(fd, content + line.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _start(run_dir: Path, launch: Mapping[str, Any]) -> tuple[subprocess.Popen[bytes], LogCopier]:
    """Start the command in a new process group, stdout and stderr appended to the run's log (by descriptor).

    In a sandbox, the job's environment is set inside it, after bubblewrap (and ``setpriv``) ran with the runner's
    minimal environment: ``env -i`` empties it and :data:`ENV_LOADER` exports the job's variables from a descriptor
    (never from arguments, which every user can read in /proc). No variable of the job's reaches a privileged
    program. Without one, the command gets the environment directly, started as the team's uid when the launch file
    names one.

    The command's stdout and stderr are the write end of a pipe (the job can neither seek nor truncate its log); the
    returned :class:`LogCopier` copies the read end into ``output.log``, up to the launch file's ``log_limit``.
    """
    work_fd = _enter_work_dir(launch)
    argv, fds = _argv(launch, work_fd)
    sandboxed = bool(launch.get("sandbox"))
    uid, gid = launch.get("uid"), launch.get("gid")
    drop: dict[str, Any] = {}
    if uid is not None and not sandboxed:
        drop = {"user": int(uid), "group": int(gid if gid is not None else uid), "extra_groups": []}
    log = os.open(run_dir / LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    reader, writer = os.pipe()  # both close-on-exec: the child gets the writer as its stdout and stderr only
    limit = int(launch.get("log_limit") or DEFAULT_LOG_LIMIT)
    try:
        child = subprocess.Popen(
            argv,
            env={"PATH": RUNNER_PATH} if sandboxed else dict(launch.get("env") or {}),
            stdin=subprocess.DEVNULL,
            stdout=writer,
            stderr=subprocess.STDOUT,
            process_group=0,
            pass_fds=fds,
            umask=0o022 if sandboxed and os.geteuid() == 0 else -1,  # bwrap's mount points: traversable by the job
            **drop,
        )
    except BaseException:
        os.close(log)
        os.close(reader)
        raise
    finally:
        os.close(writer)
        for fd in {*fds, *([work_fd] if work_fd is not None else [])}:
            os.close(fd)
    return child, LogCopier(reader, log, limit)


DEFAULT_LOG_LIMIT = 1 << 30
"""Bytes of a run's output kept in ``output.log`` (1 GiB); the rest is dropped, with a line saying so."""
DRAIN_AFTER_END_S = 2.0
"""Seconds the runner keeps copying after the command's group is gone (processes that left the group, e.g. a
daemon that called setsid, may hold the pipe: their output after that is dropped)."""


class LogCopier:
    """Copies the command's pipe into ``output.log`` in a thread, keeping at most ``limit`` bytes of output."""

    def __init__(self, reader: int, log: int, limit: int) -> None:
        self.reader, self.log, self.limit = reader, log, limit
        self.written = os.fstat(log).st_size
        self.dropped = 0
        self._last = b"\n"
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._copy, name="log-copier", daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.reader], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.reader, 1 << 16)
            except InterruptedError:
                continue
            if not chunk:
                return  # every writer is gone
            self._write(chunk)

    def _write(self, chunk: bytes) -> None:
        room = max(self.limit - self.written, 0)
        kept, rest = chunk[:room], chunk[room:]
        if kept:
            _write_all(self.log, kept)
            self.written += len(kept)
            self._last = kept[-1:]
        if rest:
            if not self.dropped:
                note = (
                    f"stargate: output.log reached its cap of {self.limit} bytes; the rest of the output is dropped\n"
                )
                _write_all(self.log, (b"" if self._last == b"\n" else b"\n") + note.encode())
            self.dropped += len(rest)

    def finish(self, timeout_s: float = DRAIN_AFTER_END_S) -> None:
        """Copy until every writer closed the pipe (at most ``timeout_s`` more), then close both ends."""
        self.thread.join(timeout_s)
        self._stop.set()  # a writer still there (it left the job's group) gets EPIPE once the pipe is closed
        self.thread.join()
        os.close(self.reader)
        with contextlib.suppress(OSError):
            os.fsync(self.log)
        os.close(self.log)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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


_KEYCTL_SYSCALL = {"x86_64": 250, "aarch64": 219}
"""The ``keyctl`` system call's number by machine (no libkeyutils needed)."""
_KEYCTL_JOIN_SESSION_KEYRING = 1


def join_fresh_session_keyring() -> bool:
    """Join a new anonymous session keyring (``keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)``), so the job does not
    inherit the server's (root's, in ``users`` mode) and no run sees another's keys; False (and a line on stderr,
    which is ``runner.log``) when it cannot, and the run goes on."""
    number = _KEYCTL_SYSCALL.get(os.uname().machine)
    if number is None:
        sys.stderr.write(
            f"stargate runner: keyctl's number on {os.uname().machine} is unknown: the job keeps the "
            "runner's session keyring\n"
        )
        return False
    import ctypes  # only here: the runner starts without it otherwise

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(number), ctypes.c_long(_KEYCTL_JOIN_SESSION_KEYRING), None) < 0:
        why = os.strerror(ctypes.get_errno())
        sys.stderr.write(f"stargate runner: cannot join a new session keyring ({why}): the job keeps the runner's\n")
        return False
    return True


def run(run_dir: Path, grace_s: float) -> int:
    """Run what ``run_dir/launch.json`` says; return the runner's own exit status (0 unless it failed)."""
    if not _claim(run_dir):
        return 0
    join_fresh_session_keyring()  # before the job exists: it inherits the new, empty session keyring
    launch = json.loads((run_dir / LAUNCH).read_text())
    command = str(launch["command"])
    early: list[int] = []  # a SIGTERM before the command's group exists is kept, then forwarded
    signal.signal(signal.SIGTERM, lambda signum, _frame: early.append(signum))  # not SIG_IGN: exec would keep it
    try:
        child, copier = _start(run_dir, launch)
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
    copier.finish()  # the log is whole before exit.json says the run ended
    code, signum = exit_code_of(returncode, sandboxed=bool(launch.get("sandbox")))
    write_json_atomically(run_dir / EXIT, {"exit_code": code, "signal": signum, "finished_at": utc_now()}, True)
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``RUN_DIR GRACE_S``."""
    if len(argv) != 2:
        sys.stderr.write("usage: local_runner.py RUN_DIR GRACE_S\n")
        return 2
    os.umask(0o077)
    run_dir, grace_s = argv
    return run(Path(run_dir), float(grace_s))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

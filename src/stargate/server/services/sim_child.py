"""The process one API simulation runs in, apart from the server: both ends of it.

The server's runner (:mod:`stargate.server.services.sim_runner`) starts ``python -m
stargate.server.services.sim_child <fd> <server pid> <memory MB>`` with :meth:`Child.start`, which hands it one end
of a socket pair and sends it the checked run (fleet, configuration, trace start, then the jobs in chunks of
:data:`CHUNK_JOBS`, so that pickling a large trace never holds the server's GIL for long). The child

- dies with the server: on Linux the kernel sends it SIGKILL when the server's thread that started it ends
  (``PR_SET_PDEATHSIG``), and at every progress report it exits when its parent is no longer the server;
- limits its address space to ``memory MB`` (``RLIMIT_AS``, soft limit) before it receives the run: past it
  allocations fail, the run stops, and the child reports ``("memory",)``;
- runs :func:`stargate.sim.run_simulation` (the loop ``stargate simulate`` runs) and sends ``("progress", settled,
  total)`` at each of its progress reports, then ``("result", summary)`` or ``("error", one line, traceback)``.

Ctrl-C at a terminal reaches the whole process group: the child ignores SIGINT; the server decides when it stops.
"""

import contextlib
import ctypes
import errno
import os
import pickle
import resource
import signal
import subprocess
import sys
import traceback
from collections.abc import Sequence
from multiprocessing.connection import Connection
from socket import socketpair
from typing import Any

import numpy.random  # noqa: F401 (numpy loads it on first use: under the memory cap mapping it could fail)

from stargate.sim import run_simulation

CHUNK_JOBS = 5_000
"""Jobs pickled and sent at a time."""
KILL_AFTER_S = 3.0
"""How long a child asked to stop (SIGTERM) has before it is killed (SIGKILL), s."""
PR_SET_PDEATHSIG = 1
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""The simulator does no linear algebra: one BLAS thread keeps the child's address space and CPU small."""


class Exited(Exception):
    """The child ended without a word (killed, or crashed): its exit code."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(returncode)
        self.returncode = returncode


class Child:
    """A running simulation process, seen from the server."""

    def __init__(self, proc: subprocess.Popen[bytes], conn: Connection) -> None:
        self.proc, self.conn = proc, conn

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    @classmethod
    def start(cls, memory_mb: int) -> "Child":
        """Start a child limited to ``memory_mb`` MB of address space."""
        mine, theirs = socketpair()
        with mine, theirs:
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), str(os.getpid()), str(memory_mb)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # the server's stdout is its own; a crash still reaches its stderr
                env={**os.environ, **SINGLE_THREADED},
            )
            return cls(proc, Connection(os.dup(mine.fileno())))

    def send_work(self, fleet: Any, config: Any, start: Any, jobs: Sequence[Any]) -> None:
        """Send the run; stops quietly when the child has gone (what it said is read by :meth:`receive`)."""
        chunks = [jobs[i : i + CHUNK_JOBS] for i in range(0, len(jobs), CHUNK_JOBS)]
        with contextlib.suppress(OSError):
            self.conn.send((fleet, config, start, len(chunks)))
            for chunk in chunks:
                self.conn.send_bytes(pickle.dumps(list(chunk), pickle.HIGHEST_PROTOCOL))

    def receive(self, timeout_s: float) -> tuple[Any, ...] | None:
        """The child's next message, None when it said nothing for ``timeout_s``; :class:`Exited` when it ended
        without one."""
        try:
            if not self.conn.poll(timeout_s):
                return None
            message: tuple[Any, ...] = self.conn.recv()
            return message
        except (EOFError, OSError):
            raise Exited(self.proc.wait()) from None

    def stop(self) -> None:
        """End the child now: SIGTERM, SIGKILL after :data:`KILL_AFTER_S`; reaps it and closes the connection."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(KILL_AFTER_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.conn.close()


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when the server's thread that started it ends (Linux); exit at once
    when the server has gone already."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _limit_memory(memory_mb: int) -> None:
    """Cap this process's address space at ``memory_mb`` MB (the soft limit: :func:`_unlimit_memory` lifts it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = memory_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _unlimit_memory() -> None:
    """Lift the cap again (up to the hard limit), so that the child can still say it ran out of memory."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _run(conn: Connection, parent: int) -> tuple[Any, ...]:
    """Receive the run, simulate it, and what to say at the end."""
    fleet, config, start, chunks = conn.recv()
    jobs: list[Any] = []
    for _ in range(chunks):
        jobs.extend(pickle.loads(conn.recv_bytes()))

    def progress(done: int, total: int) -> None:
        if os.getppid() != parent:  # the server has gone (where PR_SET_PDEATHSIG does not exist)
            os._exit(1)
        conn.send(("progress", done, total))

    config.progress = progress
    out = run_simulation(fleet, jobs, config, start=start)[0]
    return ("result", out)


def main(argv: Sequence[str]) -> int:
    """The child: ``<fd> <server pid> <memory MB>``."""
    fd, parent, memory_mb = (int(a) for a in argv)
    _die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    _limit_memory(memory_mb)
    try:
        said = _run(conn, parent)
    except Exception as exc:  # the engine refused something the checks let through, or the cap: say what
        _unlimit_memory()
        if _out_of_memory(exc):
            return _say(conn, ("memory",))
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        said = ("error", f"simulation failed: {type(exc).__name__}: {first[:300]}", traceback.format_exc())
    return _say(conn, said)


def _say(conn: Connection, said: tuple[Any, ...]) -> int:
    """Send the last word; the exit code."""
    with contextlib.suppress(OSError):
        conn.send(said)
    return 0 if said[0] == "result" else 1


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation the memory cap refused (a module loaded late fails to map, not raising
    MemoryError)."""
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
        or "failed to map segment" in text
        or "Cannot allocate memory" in text
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Locks of Slurm run names: one submit (or find) of a run at a time, across the threads of a server, the servers
sharing one state directory, and the sbatch a killed server left running.

A name's lock is one of :data:`STRIPES` empty files ``<dir>/<n>`` (``n``: a CRC of the name; so their number is
bounded and they are never pruned), the server's alone (0600, in a 0700 directory). A holder takes the stripe's
thread lock, then ``flock`` on a descriptor it opened for itself, waiting at most ``wait_s`` in all (then
:class:`~stargate.executors.slurm_commands.SlurmUnavailableError`: the scheduler tries again next cycle). It passes
that descriptor to the sbatch it runs (:meth:`SlurmCommands.run`, ``hold``): ``flock`` belongs to the open file, not
to a process, so the lock stays held while that sbatch lives, even when the server that took it was killed, and a
server started at once waits for it, then finds the job it made by its name. Release is ``close`` alone, never
``LOCK_UN``, which would free the lock of the sbatch still holding it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from stargate.executors.slurm_commands import SlurmUnavailableError

STRIPES = 64
"""Lock files (and thread locks) per executor: a slow sbatch holds back only the runs of its own stripe."""
POLL_S = 0.02
"""How often a waiter tries a lock file held by another process, s."""


class RunLocks:
    """The locks of one executor's run names, in directory ``directory``."""

    def __init__(self, directory: Path, wait_s: float, where: str, stripes: int = STRIPES) -> None:
        """``wait_s``: the longest wait for a lock, s; ``where``: how errors name the cluster (``slurm (<conf>)``)."""
        self.dir = directory
        self.wait_s = wait_s
        self.where = where
        self._threads = tuple(threading.Lock() for _ in range(stripes))

    def __len__(self) -> int:
        """How many locks there are (bounded, however many runs)."""
        return len(self._threads)

    def stripe(self, name: str) -> int:
        """The lock of run ``name``."""
        return zlib.crc32(name.encode()) % len(self._threads)

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[int]:
        """Hold the lock of run ``name``; yields its locked descriptor, for a command that must keep the lock for as
        long as it lives. SlurmUnavailableError after ``wait_s`` without it."""
        stripe = self.stripe(name)
        deadline = time.monotonic() + self.wait_s
        if not self._threads[stripe].acquire(timeout=self.wait_s):
            raise self._busy(name, stripe)
        try:
            fd = self._open(stripe)
            try:
                while not _try_flock(fd):
                    if time.monotonic() >= deadline:
                        raise self._busy(name, stripe)
                    time.sleep(POLL_S)
                yield fd
            finally:
                os.close(fd)  # frees the lock unless a command still holds the descriptor
        finally:
            self._threads[stripe].release()

    def _open(self, stripe: int) -> int:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(self.dir / f"{stripe:02d}", flags, 0o600)

    def _busy(self, name: str, stripe: int) -> SlurmUnavailableError:
        return SlurmUnavailableError(
            f"{self.where}: {name} waited {self.wait_s:g} s for lock {self.dir.name}/{stripe:02d}, still held by a "
            "submit in sbatch (this server's, or one left running by a server that stopped)"
        )


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True

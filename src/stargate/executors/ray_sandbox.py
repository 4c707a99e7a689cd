"""The sandbox of the Ray jobs of a head on the server's own machine: their command cannot see the server's state.

A Ray head at a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``, this machine's own addresses) runs its
jobs on the server's machine as the head's user, often the server's own (or root): they could read
``STARGATE_HOME`` (the admin token, the SQLite database). Each entrypoint then runs in a bubblewrap sandbox
(:mod:`stargate.executors.bwrap` says whether bubblewrap works here) that shows the whole filesystem as it is, so
that Ray's worker environment (its sockets, ``/dev/shm``) still works, with an empty tmpfs over each private
directory, no capability left (not even for root), and a process namespace of its own with its own ``/proc``: the
processes outside are not there to look through (``/proc/<pid>/root`` of a process of the same user outside the
sandbox shows the real filesystem, private directories included). The UTF-8 relay that writes the command's
output to Ray's log (:mod:`stargate.executors.log_text`) runs this sandbox, from outside it: it only reads the
sandboxed processes' output from a pipe, runs nothing of theirs, and is not among the processes they can see; the
job's variables that change how processes start are not in its environment (they are set for the command only).
The sandbox is decided on the head's side: a directory the head's user cannot reach is left as it is (the job
cannot reach it either), so a loopback address that forwards to a Ray cluster elsewhere runs its commands as they
are.

The price of the process namespace: ``ray.init()`` in such a job does not find the node's raylet (Ray finds it
among the local processes), so a job of a head that can read the server's state runs commands, not Ray programs.
What it does not cover: a job can submit other jobs through the Jobs API with the token Ray puts in its
environment (``RAY_AUTH_TOKEN``), and those run sandboxed only if they come through Stargate. Only a Ray head that
runs as a user of its own (then nothing is hidden from its jobs, since they cannot reach the state directory, and
``ray.init()`` works) or on another machine keeps jobs out of the state directory without these limits (see
docs/howto/ray-cluster.md).
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from stargate.executors.bwrap import probe_bwrap


class RaySandboxError(RuntimeError):
    """Jobs of a head on the server's machine cannot be sandboxed here (the message says why)."""


@dataclass(frozen=True, slots=True)
class RaySandbox:
    """The bubblewrap wrapper of one Ray executor's entrypoints: ``bwrap`` (absolute path) and the directories it
    hides (absolute, resolved, none inside another)."""

    bwrap: str
    hidden: tuple[str, ...]

    def wrap(self, entrypoint: str) -> str:
        """``entrypoint`` (a ``/bin/sh -c`` command) run in the sandbox: each hidden directory the head's user can
        reach gets an empty tmpfs over it; when it reaches none, ``entrypoint`` runs as it is. A sandbox that fails
        to start fails the job (bubblewrap's message is in its log); it never runs without one."""
        covers = "".join(f'[ -e {shlex.quote(d)} ] && set -- "$@" --tmpfs {shlex.quote(d)}; ' for d in self.hidden)
        box = f"{shlex.quote(self.bwrap)} --dev-bind / / --unshare-pid --proc /proc --cap-drop ALL"
        return (
            f'set --; {covers}[ $# -eq 0 ] || set -- {box} "$@" --; exec "$@" /bin/sh -c -- {shlex.quote(entrypoint)}'
        )


def on_this_machine(address: str) -> bool:
    """Whether the http(s) ``address`` names this machine: ``localhost`` (or a name under it), this machine's host
    name, a loopback or unspecified IP, or an IP of one of its interfaces. Another name of this machine (an alias in
    /etc/hosts) is not looked up."""
    host = (urlsplit(address).hostname or "").rstrip(".").lower()
    if host in ("localhost", socket.gethostname().lower()) or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(ip), 0))  # only an address of this machine's interfaces binds
        except OSError:
            return False
    return True


def sandbox_for(address: str, private: Iterable[Path | str]) -> RaySandbox | None:
    """The sandbox of the jobs of the Ray head at ``address``: None for a head on another machine (it cannot see the
    server's files); RaySandboxError when bubblewrap cannot make one here. ``private``: the server's private
    directories (the state directory, the database's)."""
    if not on_this_machine(address):
        return None
    bwrap, why = probe_bwrap(root=False)
    if bwrap is None:
        raise RaySandboxError(why)
    return RaySandbox(bwrap, covering(private))


def covering(paths: Iterable[Path | str]) -> tuple[str, ...]:
    """``paths`` resolved, without ``/`` and without those inside another (shortest first)."""
    found: list[str] = []
    for real in sorted({os.path.realpath(p) for p in paths}, key=len):
        if real != "/" and not any(real == f or real.startswith(f + "/") for f in found):
            found.append(real)
    return tuple(found)

"""A job's log as text: its output made valid UTF-8 on its way into an engine's log, and the error of a log that is
not.

Ray stores what a job's command writes as it is, and its Jobs API reads the log back as UTF-8 text: one byte that
is not UTF-8 and Ray answers HTTP 500 (a ``UnicodeDecodeError``) for the whole log, for as long as it keeps the job.
So the Ray executor runs each command under the relay of :mod:`stargate.executors.utf8_relay` (:func:`relayed`),
and Ray never stores anything else. A log stored before (a run started by an older Stargate) stays unreadable
through Ray: :class:`LogNotTextError`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from stargate.executors.utf8_relay import RELAY_ENV

RELAY_PROGRAM = (Path(__file__).parent / "utf8_relay.py").read_text(encoding="utf-8")
"""The relay's source, run on the node as ``python -I -S -c`` (given in :data:`RELAY_ENV`, so that the log's first
line, which shows the entrypoint, stays short)."""
NO_PYTHON = "stargate: no Python found to make this job's output valid UTF-8; its output is stored as it is written"


class LogNotTextError(RuntimeError):
    """The engine cannot serve a run's log because the log is not UTF-8 text; it never will (the message says which
    run, and where the log is)."""


def relayed(entrypoint: str) -> str:
    """``entrypoint`` (a ``/bin/sh -c`` command) run by the UTF-8 relay, for an engine that runs it with
    ``/bin/sh -c`` from a Python process (Ray's job supervisor) with :data:`RELAY_ENV` set to :data:`RELAY_PROGRAM`.

    The relay's interpreter is that parent's own (``/proc/$PPID/exe``: a Ray node has no other Python for sure),
    else ``python3`` or ``python`` on the engine's ``PATH`` (never the job's: its ``PATH`` is set for its command
    only); isolated (``-I -S``: no ``PYTHON*`` variable, no site packages). With none, the entrypoint runs as it is,
    after a line saying so."""
    return (
        f"set -- {shlex.quote(entrypoint)}; p=$(readlink /proc/$PPID/exe 2>/dev/null); "
        'case ${p##*/} in python*) ;; *) p= ;; esac; [ -x "$p" ] || p=$(command -v python3 || command -v python); '
        f'[ -n "$p" ] && [ -n "${RELAY_ENV}" ] && exec "$p" -I -S -c "${RELAY_ENV}" "$1"; '
        f'echo {shlex.quote(NO_PYTHON)} >&2; exec /bin/sh -c -- "$1"'
    )

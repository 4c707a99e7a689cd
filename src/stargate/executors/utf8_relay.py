"""The UTF-8 relay: runs a shell command and writes its output (stdout and stderr) to its own stdout as valid UTF-8.

A program on its own (the standard library only, any Python 3 that Ray runs on), sent to a Ray node by
:mod:`stargate.executors.log_text` and run there as ``python -I -S -c <this source> COMMAND``: it runs
``/bin/sh -c -- COMMAND`` with the command's stdout and stderr on one pipe and writes what it reads to its own stdout
(the job's log file) as soon as it reads it, each invalid sequence replaced by U+FFFD (an incremental decoder:
a character split across two reads is kept whole).

- Exit code: the command's; 128 + N for a command killed by signal N (what ``/bin/sh`` reports).
- Signals: SIGTERM and SIGINT are for the command (Ray sends its stop signal to every process of the job); the relay
  goes on until the command has ended, so what the command writes while it stops is in the log. SIGKILL ends it
  with the rest of the job.
- End: once the pipe is closed by every process that held it, or :data:`DRAIN_S` after the command has ended
  (a process the command left behind that keeps the pipe open does not keep the job going). Until then the relay
  reads on: a sandboxed command's own process may still write after the sandbox's outer process ended (bubblewrap's
  ends at once on SIGTERM; the command's trap writes after).
- Environment: the command gets the relay's, without :data:`RELAY_ENV` (which holds this program).
"""

from __future__ import annotations

import codecs
import os
import select
import signal
import subprocess
import sys
import time

RELAY_ENV = "STARGATE_UTF8_RELAY"
"""The environment variable that carries this program to the node (the command never sees it)."""
DRAIN_S = 2.0
"""Longest the relay reads on once the command has ended (its leftover processes may still write), seconds."""
WAKE_S = 0.25
"""How often the relay looks whether the command has ended while it writes nothing, seconds."""
CHUNK = 65536


def _for_the_command(_number: int, _frame: object) -> None:
    """SIGTERM and SIGINT: the command's to act on; the relay stays to write what it says meanwhile."""


def main(argv: list[str]) -> int:
    """Run ``argv[1]`` with ``/bin/sh`` and relay its output; the command's exit code."""
    if len(argv) != 2:
        sys.stderr.write("stargate UTF-8 relay: expected one argument, the command\n")
        return 2
    for number in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(number) is not signal.SIG_IGN:  # a handler: the command starts with the default again
            signal.signal(number, _for_the_command)
    env = {name: value for name, value in os.environ.items() if name != RELAY_ENV}
    command = subprocess.Popen(
        ["/bin/sh", "-c", "--", argv[1]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    )
    assert command.stdout is not None
    relay(command, command.stdout.fileno())
    code = command.wait()
    return 128 - code if code < 0 else code


def relay(command: subprocess.Popen[bytes], source: int) -> None:
    """Copy ``source`` to stdout as valid UTF-8 until it ends, or until ``command`` has ended and nothing is left."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    ended = None
    while True:
        if ended is None and command.poll() is not None:
            ended = time.monotonic()
        wait = WAKE_S if ended is None else DRAIN_S - (time.monotonic() - ended)
        if wait <= 0:  # a process the command left behind still holds the pipe
            break
        if not select.select([source], [], [], wait)[0]:
            continue
        data = os.read(source, CHUNK)
        if not data:  # every process that held the pipe has closed it
            break
        write(decoder.decode(data))
    write(decoder.decode(b"", True))


def write(text: str) -> None:
    """Write ``text`` to stdout (file descriptor 1) whole; a stdout that cannot be written drops it (the relay goes
    on reading, so the command never blocks on a full pipe)."""
    data = text.encode("utf-8")
    while data:
        try:
            data = data[os.write(1, data) :]
        except OSError:
            return


if __name__ == "__main__":
    sys.exit(main(sys.argv))

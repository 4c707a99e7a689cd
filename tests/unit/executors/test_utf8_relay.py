"""The UTF-8 relay, run as Ray runs it (``python -I -S -c <source> COMMAND``), with no Ray: what a command's own
processes write after its direct child ended is kept, and a process left behind holding the pipe does not keep the
relay going."""

import os
import signal
import subprocess
import sys
import time

from stargate.executors.log_text import RELAY_PROGRAM
from stargate.executors.utf8_relay import DRAIN_S


def relay(command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", RELAY_PROGRAM, command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_what_the_commands_process_writes_after_its_direct_child_ended_is_kept() -> None:
    # the direct child ends at once (as bubblewrap's outer process does on SIGTERM); its own process writes later
    out, err = relay("(sleep 0.5; printf 'late caf\\351\\n') & exit 3").communicate(timeout=30)
    assert out.decode("utf-8") == "late caf\ufffd\n", (out, err)


def test_the_exit_code_is_the_commands_and_its_output_is_whole() -> None:
    done = relay("printf 'a\\n'; printf 'b \\377\\n' >&2; exit 7")
    out, _ = done.communicate(timeout=30)
    assert (done.returncode, out.decode("utf-8")) == (7, "a\nb \ufffd\n")


def test_a_process_left_behind_holding_the_pipe_does_not_keep_the_relay_going() -> None:
    started = time.monotonic()
    going = relay("sleep 60 & echo left")
    try:
        out, _ = going.communicate(timeout=30)
        took = time.monotonic() - started
        assert (going.returncode, out) == (0, b"left\n")
        assert DRAIN_S <= took < DRAIN_S + 10, took
    finally:
        os.killpg(going.pid, signal.SIGKILL)  # the sleep left behind

"""Helpers for tests of the remote executors: a server state directory holding an admin token, and waiting for a
run to end."""

import time
from pathlib import Path

from stargate.executors import Executor, RunHandle, RunStatus


def state_dir_with_token(tmp_path: Path, secret: str) -> Path:
    """A server state directory holding an admin token, as `stargate up` writes it (0700 directory, 0600 file)."""
    state = tmp_path / ".stargate"
    state.mkdir(mode=0o700)
    token = state / "admin-token"
    token.write_text(secret + "\n")
    token.chmod(0o600)
    return state


def wait_final(executor: Executor, handle: RunHandle, timeout_s: float = 25.0) -> RunStatus:
    """The run's status once it is final, or its last status after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    status = executor.poll(handle)
    while not status.state.is_final() and time.monotonic() < deadline:
        time.sleep(0.2)
        status = executor.poll(handle)
    return status

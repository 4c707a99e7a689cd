"""Helpers for tests of the remote executors: a server state directory holding an admin token, a Ray executor on a
test head, and waiting for a run to end."""

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

from engines.ray_head import RayHead
from stargate.domain.executors import RayExecutorConfig
from stargate.executors import Executor, RunHandle, RunStatus
from stargate.executors.ray_jobs import RayExecutor


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


@contextlib.contextmanager
def ray_executor_on(head: RayHead, home: Path, executor_id: str, token_env: str) -> Iterator[RayExecutor]:
    """A Ray executor of a fresh installation on ``head`` with ``home`` as its server's state directory; the head's
    token is in ``token_env`` while it lives."""
    os.environ[token_env] = head.token
    try:
        conf = RayExecutorConfig(id=executor_id, kind="ray", address=head.address, token_env=token_env)
        executor = RayExecutor.from_config(conf, SimpleNamespace(home=home, installation_id=uuid.uuid4().hex))
        try:
            yield executor
        finally:
            executor.close()
    finally:
        os.environ.pop(token_env, None)

"""Fixtures for the executor tests: a local executor over a temporary runs directory, and a poll-until-final helper.

Every run a test leaves behind is killed at teardown (its runner and its command's process group).
"""

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stargate.executors import LocalExecutor, RunHandle, RunStatus


def wait_final(executor: LocalExecutor, handle: RunHandle, timeout_s: float = 10.0) -> RunStatus:
    """Poll every 10 ms until the run is final; fail the test after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = executor.poll(handle)
        if status.state.is_final():
            return status
        time.sleep(0.01)
    pytest.fail(f"run {handle.key} still {executor.poll(handle).state} after {timeout_s} s")


def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    """Poll ``predicate()`` every 10 ms until it is true; fail the test after ``timeout_s`` seconds."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    pytest.fail(f"condition not met after {timeout_s} s")


def kill_leftovers(runs_dir: Path) -> None:
    """SIGKILL the runner and the command group of every run under ``runs_dir`` (test hygiene)."""
    for record_path in runs_dir.glob("*/attempt-*/run.json"):
        record = json.loads(record_path.read_text())
        for kill, target in ((os.killpg, record.get("pgid")), (os.kill, record.get("pid"))):
            if isinstance(target, int):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(target, signal.SIGKILL)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh runs directory; whatever still runs in it is killed afterwards."""
    path = tmp_path / "runs"
    yield path
    kill_leftovers(path)


@pytest.fixture
def executor(runs_dir: Path) -> LocalExecutor:
    """A local executor with a short cancel grace period (0.5 s)."""
    return LocalExecutor(runs_dir, grace_s=0.5)


@pytest.fixture(name="wait_final")
def wait_final_fixture() -> object:
    """The :func:`wait_final` helper, as a fixture (test modules do not import conftest)."""
    return wait_final


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> object:
    """The :func:`wait_for` helper, as a fixture."""
    return wait_for

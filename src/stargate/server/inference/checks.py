"""Replica health checks: ``GET http://127.0.0.1:PORT<health_path>`` on a few threads of their own, so a replica
that does not answer never holds up a scheduler cycle (each check is bounded by :data:`CHECK_TIMEOUT_S`; the step
collects the answers that came and asks again when due).

A starting replica is checked every :data:`STARTING_EVERY_S` (it is ready at the first 200), a ready one every
:data:`READY_EVERY_S`. httpx's line per request (INFO) is not logged for these checks (a line every 0.25 s per
starting replica); its warnings and errors, and its lines for every other request of the server, still are.
"""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx

CHECK_TIMEOUT_S = 1.0
STARTING_EVERY_S = 0.25
READY_EVERY_S = 2.0
THREADS = 4
THREAD_PREFIX = "stargate-health"


def _not_a_check_line(record: logging.LogRecord) -> bool:
    """False for httpx's per-request INFO line of a health check (logged on a check's thread)."""
    return record.levelno > logging.INFO or not (record.threadName or "").startswith(THREAD_PREFIX)


def _quiet_checks() -> None:
    """Filter httpx's per-request lines of the checks out of the ``httpx`` logger (once per process)."""
    logger = logging.getLogger("httpx")
    if _not_a_check_line not in logger.filters:
        logger.addFilter(_not_a_check_line)


Key = tuple[str, int]
"""(service, replica number)."""


@dataclass
class _Check:
    future: "Future[bool] | None" = None
    last: float = -1e18
    failing: int = 0


class HealthChecks:
    """The health checks of every replica this leader watches."""

    def __init__(self) -> None:
        self._checks: dict[Key, _Check] = {}
        _quiet_checks()
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix=THREAD_PREFIX)
        self._http = httpx.Client(timeout=CHECK_TIMEOUT_S, trust_env=False)
        self._lock = threading.Lock()

    def collect(self) -> dict[Key, tuple[bool, int]]:
        """The answers that came since the last call: (healthy, failed checks in a row) by replica."""
        found: dict[Key, tuple[bool, int]] = {}
        for key, check in self._checks.items():
            future = check.future
            if future is None or not future.done():
                continue
            check.future = None
            ok = bool(future.result()) if future.exception() is None else False
            check.failing = 0 if ok else check.failing + 1
            found[key] = (ok, check.failing)
        return found

    def failing(self, key: Key) -> int:
        """Failed checks in a row of replica ``key``."""
        check = self._checks.get(key)
        return 0 if check is None else check.failing

    def ask(self, key: Key, url: str, ready: bool) -> None:
        """Check ``url`` for replica ``key`` when due (none in flight, and the last one old enough)."""
        check = self._checks.setdefault(key, _Check())
        now = time.monotonic()
        if check.future is not None or now - check.last < (READY_EVERY_S if ready else STARTING_EVERY_S):
            return
        check.last = now
        check.future = self._pool.submit(self._get, url)

    def keep(self, keys: set[Key]) -> None:
        """Forget the replicas not in ``keys``."""
        for key in [k for k in self._checks if k not in keys]:
            del self._checks[key]

    def close(self) -> None:
        """Stop the threads (checks in flight end within their timeout)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()

    def _get(self, url: str) -> bool:
        try:
            return self._http.get(url).status_code == 200
        except httpx.HTTPError:
            return False

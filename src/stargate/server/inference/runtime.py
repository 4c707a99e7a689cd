"""What one server process keeps of inference services: the route table its proxy reads, the meters it counts
into, and a thread that keeps both in step with the database.

Every :data:`REFRESH_S` seconds the thread reads the routes (two small queries) and writes the meters that changed
(or have requests in flight) as this process's traffic rows. The proxy also reads the routes itself when they are
older than that (a process whose thread is not running, as in tests), and the scheduler leader writes its own
meters before each autoscaling tick and reads the routes again after each change it makes, so a replica it
drains is out of its own process's choices at once. The leader's own state (autoscalers, health checks) is
``control``, set by the services step.
"""

import contextlib
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from stargate.server.inference.meter import Meter
from stargate.server.inference.metrics import ServiceMetrics
from stargate.server.inference.routes import RouteTable
from stargate.store import Database
from stargate.store.repositories import services as service_repo

log = logging.getLogger("stargate.services")

REFRESH_S = 0.5
"""Seconds between two reads of the routes and writes of the meters."""
QUIET_S = 60.0
"""A failure of the thread is logged at most this often."""


class InferenceRuntime:
    """The inference state of one server process over database ``db``, metrics on ``registry``."""

    def __init__(self, db: Database, registry: CollectorRegistry | None = None) -> None:
        self.db = db
        self.process = uuid.uuid4().hex
        """This process's id in the traffic rows."""
        self.started_at = datetime.now(UTC)
        self.routes = RouteTable()
        self.metrics = ServiceMetrics(registry or CollectorRegistry())
        self.control: Any = None
        """The services step's state while this process leads (see :mod:`stargate.server.scheduling.services`)."""
        self._meters: dict[str, Meter] = {}
        self._flushed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._logged = -QUIET_S

    def meter(self, service: str) -> Meter:
        """The meter of ``service`` in this process (made on first use)."""
        found = self._meters.get(service)
        if found is None:
            with self._lock:
                found = self._meters.setdefault(service, Meter())
        return found

    def refresh(self) -> None:
        """Read the routes from the database; meters of services gone (and idle) are dropped."""
        with self.db.read() as session:
            services, replicas = service_repo.routes(session)
        self.routes.load(services, replicas)
        names = self.routes.names()
        with self._lock:
            for name in [n for n, m in self._meters.items() if n not in names and m.in_flight == 0]:
                del self._meters[name]
                self._flushed.pop(name, None)

    def flush(self, now: datetime | None = None) -> int:
        """Write the meters that changed since their last write, or have requests in flight; how many."""
        with self._lock:
            meters = list(self._meters.items())
        due = {name: m for name, m in meters if m.version != self._flushed.get(name) or m.in_flight > 0}
        if not due:
            return 0
        versions = {name: m.version for name, m in due.items()}
        rows = {name: m.counters() for name, m in due.items()}
        with self.db.write() as session:
            service_repo.save_traffic(session, self.process, self.started_at, now or datetime.now(UTC), rows)
        self._flushed.update(versions)
        return len(rows)

    def start(self) -> None:
        """Start the refresh thread (a daemon; :meth:`stop` ends it)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="stargate-services", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the refresh thread after writing the meters one last time."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout_s)
        control, self.control = self.control, None
        if control is not None:
            control.close()
        with contextlib.suppress(Exception):  # the database may be gone at shutdown
            self.flush()

    def _run(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                if time.monotonic() - self.routes.loaded_at >= REFRESH_S * 0.9:  # the leader's step read them since
                    self.refresh()
                self.flush()
            except Exception as exc:  # the database may be down: the proxy keeps its last routes meanwhile
                if time.monotonic() - self._logged >= QUIET_S:
                    self._logged = time.monotonic()
                    log.warning("services: cannot read routes or write traffic: %s: %s", type(exc).__name__, exc)

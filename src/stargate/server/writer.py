"""Group commit for job submissions: one writer thread stores concurrent submissions in one transaction.

Each API request checks its job (no I/O) and hands it to :class:`SubmissionWriter`; the writer takes every
submission waiting at that moment (up to ``MAX_BATCH``), writes them with one multi-row ``INSERT`` of jobs and one
of their events in ONE transaction, commits, and only then answers each request. So SQLite sees one writer instead
of dozens of threads queueing on its lock (whose busy-wait backs off up to 100 ms at a time), and PostgreSQL one
commit per batch. A job checked against a fleet version that is no longer in force is checked again inside the
transaction; a job that fails its check gets its own error and does not affect the others of its batch.
"""

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stargate.domain import JobSpec
from stargate.server.auth import Principal
from stargate.server.errors import ServiceError
from stargate.server.services import jobs as job_service
from stargate.store import Database, record_submissions
from stargate.store.repositories import jobs as job_repo

log = logging.getLogger("stargate.server")
MAX_BATCH = 256
"""Most submissions written in one transaction."""


@dataclass
class Submission:
    """One job waiting to be stored: who sent it, the spec, its time, and (when the request could check it
    already) its row values and the fleet version they were checked against."""

    who: Principal
    spec: JobSpec
    now: datetime
    values: dict[str, Any] | None = None
    version: str | None = None
    done: "Future[tuple[int, dict[str, Any]]]" = field(default_factory=Future)
    """Resolved after the commit with (row id, row values), or with the error."""


@dataclass
class SubmissionWriter:
    """The one thread that stores submissions, started on first use; ``rules`` gives (version, SubmitRules) of the
    fleet in force inside a session (see :class:`stargate.server.context.FleetCache`)."""

    db: Database
    rules: Any
    _queue: "queue.SimpleQueue[Submission | None]" = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, item: Submission) -> "Future[tuple[int, dict[str, Any]]]":
        """Queue ``item`` for the next transaction; its future resolves once the transaction committed."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stargate-submissions", daemon=True)
                self._thread.start()
        self._queue.put(item)
        return item.done

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the thread (a later :meth:`put` starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            try:
                self.write(batch)
            except Exception:  # never let the thread die: every future of the batch has its answer already
                log.exception("the submission writer failed on a batch of %d", len(batch))

    def write(self, batch: list[Submission]) -> None:
        """Store ``batch`` in one transaction and resolve every future (an error fails only its own item, except a
        database error, which fails the whole batch: nothing of it was stored). A submission whose request was
        cancelled before its batch began (the client went away) is not stored."""
        batch = [item for item in batch if item.done.set_running_or_notify_cancel()]  # skip requests gone already
        if not batch:
            return
        try:
            accepted: list[tuple[Submission, dict[str, Any]]] = []
            with self.db.write() as session:
                version, rules = self.rules(session)
                for item in batch:
                    values = item.values if item.version == version else None
                    if values is None:
                        try:
                            values = job_service.check(item.who, item.spec, rules, item.now)
                        except ServiceError as exc:
                            item.done.set_exception(exc)
                            continue
                    accepted.append((item, values))
                ids = job_repo.insert_many(session, [v for _, v in accepted])
                record_submissions(session, ids, [i.who.actor for i, _ in accepted], [i.now for i, _ in accepted])
        except BaseException as exc:  # nothing was stored: every waiting request gets the error
            log.warning("storing %d submission(s) failed: %s: %s", len(batch), type(exc).__name__, exc)
            for item in batch:
                if not item.done.done():
                    item.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (item, values), row_id in zip(accepted, ids, strict=True):
            item.done.set_result((row_id, values))

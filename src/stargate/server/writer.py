"""Group commit for job submissions: one writer thread stores concurrent submissions in one transaction.

Each API request checks its job (no I/O) and hands it to :class:`SubmissionWriter`; the writer takes every
submission waiting at that moment (up to ``MAX_BATCH``), writes them with one multi-row ``INSERT`` of jobs and one
of their events (on PostgreSQL one statement for both, see :func:`stargate.store.insert_submitted`) in ONE
transaction, commits, and only then answers each request. So SQLite sees one writer instead
of dozens of threads queueing on its lock (whose busy-wait backs off up to 100 ms at a time), and PostgreSQL one
commit per batch. A job checked against a fleet version that is no longer in force is checked again inside the
transaction; a job that fails its check gets its own error and does not affect the others of its batch.

Idempotent submissions: a submission with an idempotency key (``<token id>:<Idempotency-Key header>``) whose key is
stored already gets that job back (``replayed``), or 409 when its spec differs; two submissions with one key in the
same batch give one job. A key stored by another connection between this batch's look-up and its ``INSERT`` (another
process, a replica) hits the unique constraint ``uq_jobs_idempotency_key``: the batch is then written again, and
finds that job.
"""

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from stargate.domain import JobReason, JobSpec
from stargate.server.auth import Principal
from stargate.server.errors import ConflictError, InvalidError, ServiceError, database_problem
from stargate.server.services import jobs as job_service
from stargate.store import Database, JobRow, format_job_id, insert_submitted
from stargate.store.repositories import fleet_versions
from stargate.store.repositories import jobs as job_repo

log = logging.getLogger("stargate.server")
MAX_BATCH = 256
"""Most submissions written in one transaction."""
WRITE_TRIES = 3
"""Times a batch is written when a concurrent transaction stored one of its idempotency keys first."""
SUBMITTED_REASON = JobReason.SUBMITTED
"""The reason of every new job (see :func:`stargate.server.services.jobs.check`), as a replay shows it."""

Stored = tuple[int, dict[str, Any]]
"""(row id, row values) of a stored job."""


def request_digest(spec: JobSpec) -> str:
    """SHA-256 of a spec's canonical JSON (keys sorted, defaults filled in): equal for equal submissions."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Submission:
    """One job waiting to be stored: who sent it, the spec, its time, and (when the request could check it
    already) its row values and the fleet version they were checked against."""

    who: Principal
    spec: JobSpec
    now: datetime
    values: dict[str, Any] | None = None
    version: str | None = None
    idempotency_key: str | None = None
    """``<token id>:<Idempotency-Key header>``, or None: a retry with the same key gets the job stored first."""
    request_sha256: str | None = None
    """:func:`request_digest` of the spec (computed when a key is given)."""
    replayed: bool = False
    """Set before ``done`` resolves when the job was stored by an earlier request with the same key."""
    done: "Future[Stored]" = field(default_factory=Future)
    """Resolved after the commit with (row id, row values), or with the error."""

    def __post_init__(self) -> None:
        if self.idempotency_key is not None and self.request_sha256 is None:
            self.request_sha256 = request_digest(self.spec)


@dataclass
class SubmissionWriter:
    """The one thread that stores submissions, started on first use; ``rules`` gives (version, SubmitRules) of the
    fleet in force inside a session (see :class:`stargate.server.context.FleetCache`)."""

    db: Database
    rules: Callable[[Session], tuple[str, job_service.SubmitRules]]
    _queue: "queue.SimpleQueue[Submission | None]" = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, item: Submission) -> "Future[Stored]":
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
        """Store ``batch`` in one transaction and resolve every future (an error fails only its own item). When the
        database refuses the batch's statement (a value that does not fit, a constraint), the batch is written again
        with each row in its own savepoint: a refused row fails only its own request. Any other database error fails
        the whole batch: nothing of it was stored. A submission whose request was
        cancelled before its batch began (the client went away) is not stored."""
        batch = [item for item in batch if item.done.set_running_or_notify_cancel()]  # skip requests gone already
        if not batch:
            return
        one_by_one = False
        for attempt in range(1, WRITE_TRIES + 2):
            try:
                outcomes = self._store(batch, one_by_one=one_by_one)
                break
            except (IntegrityError, DataError) as exc:
                if isinstance(exc, IntegrityError) and attempt < WRITE_TRIES and any(i.idempotency_key for i in batch):
                    log.info("an idempotency key of a batch of %d was stored meanwhile; writing it again", len(batch))
                    continue
                if not one_by_one:  # a row the database refuses: store each row alone, so it fails only itself
                    log.warning(
                        "a batch of %d submission(s) failed (%s); storing them one by one",
                        len(batch),
                        database_problem(exc),
                    )
                    one_by_one = True
                    continue
                self._fail(batch, exc)
                return
            except BaseException as exc:  # nothing was stored: every waiting request gets the error
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                return
        else:  # pragma: no cover - every path of the loop breaks or returns
            return
        for item, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, ServiceError):
                item.done.set_exception(outcome)
            else:
                item.replayed = outcome[2]
                item.done.set_result((outcome[0], outcome[1]))

    def _store(
        self, batch: list[Submission], *, one_by_one: bool = False
    ) -> list["ServiceError | tuple[int, dict[str, Any], bool]"]:
        """Write ``batch`` in one transaction; each item's outcome, in order: its error, or (row id, values,
        replayed). Nothing is resolved here: a failed transaction may be written again. ``one_by_one``: each row in
        its own savepoint, so a row the database refuses gets its own error and the others are stored."""
        outcomes: dict[int, ServiceError | tuple[int, dict[str, Any], bool]] = {}
        with self.db.write() as session:
            fleet_versions.lock_shared(session)  # a fleet change waits for this batch (and this batch for it)
            version, rules = self.rules(session)
            stored = job_repo.by_idempotency_keys(session, (i.idempotency_key for i in batch if i.idempotency_key))
            leaders: dict[str, int] = {}
            followers: list[tuple[int, int]] = []
            accepted: list[tuple[int, dict[str, Any]]] = []
            for n, item in enumerate(batch):
                key = item.idempotency_key
                if key is not None and key in stored:
                    outcomes[n] = _replay(item, stored[key])
                    continue
                if key is not None and key in leaders:
                    followers.append((n, leaders[key]))
                    continue
                if key is not None:
                    leaders[key] = n
                values = item.values if item.version == version else None
                if values is None:
                    try:
                        values = job_service.check(item.who, item.spec, rules, item.now)
                    except ServiceError as exc:
                        outcomes[n] = exc
                        continue
                accepted.append((n, {**values, "idempotency_key": key, "request_sha256": item.request_sha256}))
            if one_by_one:
                outcomes.update(_insert_each(session, batch, accepted))
            else:
                ids = insert_submitted(session, [v for _, v in accepted])  # the jobs and their first events
                for (n, values), row_id in zip(accepted, ids, strict=True):
                    outcomes[n] = (row_id, values, False)
            for n, lead in followers:
                outcomes[n] = _follow(batch[n], batch[lead], outcomes[lead])
        return [outcomes[n] for n in range(len(batch))]

    def _fail(self, batch: list[Submission], exc: BaseException) -> None:
        """Answer every request of a batch that was not stored with ``exc``."""
        if not isinstance(exc, OperationalError):  # the database is down: the app logs that once per kind
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""  # not the SQL and its parameters
            log.warning("storing %d submission(s) failed: %s: %s", len(batch), type(exc).__name__, first)
        for item in batch:
            if not item.done.done():
                item.done.set_exception(exc)


def _insert_each(
    session: Session, batch: list[Submission], accepted: list[tuple[int, dict[str, Any]]]
) -> dict[int, "ServiceError | tuple[int, dict[str, Any], bool]"]:
    """Insert each accepted row in its own savepoint: a row the database refuses gets a 422 naming why, the others
    are stored. An idempotency key stored meanwhile by another connection is raised (the batch is written again)."""
    outcomes: dict[int, ServiceError | tuple[int, dict[str, Any], bool]] = {}
    for n, values in accepted:
        try:
            with session.begin_nested():
                (row_id,) = insert_submitted(session, [values])
        except (IntegrityError, DataError) as exc:
            if isinstance(exc, IntegrityError) and batch[n].idempotency_key is not None:
                raise
            log.warning("a submission of %s could not be stored: %s", batch[n].who.actor[:80], database_problem(exc))
            outcomes[n] = InvalidError(
                f"body: found a job the database refuses to store ({database_problem(exc)}); expected values that "
                "fit its columns (nothing of this job was stored; the other jobs of its batch were)"
            )
            continue
        outcomes[n] = (row_id, values, False)
    return outcomes


def _key_text(item: Submission) -> str:
    """The client's part of a scoped idempotency key, quoted for a message."""
    return json.dumps((item.idempotency_key or "").split(":", 1)[-1][:80])


def _conflict(item: Submission, job: str) -> ConflictError:
    return ConflictError(
        f"header.Idempotency-Key: found {_key_text(item)}, which this token already used for {job} with a different "
        "body; expected a new key for a different job (or the same body to get that job again)"
    )


def _replay(item: Submission, job: JobRow) -> "ServiceError | tuple[int, dict[str, Any], bool]":
    """The outcome of a submission whose key is stored with ``job``: that job as first answered, or 409."""
    if job.request_sha256 != item.request_sha256:
        return _conflict(item, f"job {job.public_id}")
    values = {
        "name": job.name,
        "queue_id": job.queue_id,
        "team_id": job.team_id,
        "gpus": job.gpus,
        "gpu_models": list(job.gpu_models),
        "priority_class": job.priority_class,
        "reason": SUBMITTED_REASON,
        "detail": "",
        "submitted_at": job.submitted_at,
    }
    return job.id, values, True


def _follow(
    item: Submission, leader: Submission, outcome: "ServiceError | tuple[int, dict[str, Any], bool]"
) -> "ServiceError | tuple[int, dict[str, Any], bool]":
    """The outcome of a submission with the key of an earlier one in the same batch (``leader``)."""
    if item.request_sha256 != leader.request_sha256:
        if isinstance(outcome, ServiceError):
            return ConflictError(
                f"header.Idempotency-Key: found {_key_text(item)}, which another request of this token uses at the "
                "same moment with a different body; expected a new key for a different job"
            )
        return _conflict(item, f"job {format_job_id(outcome[0])}")
    return outcome if isinstance(outcome, ServiceError) else (outcome[0], outcome[1], True)

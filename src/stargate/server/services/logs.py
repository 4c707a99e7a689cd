"""Job logs: read from the executor of the job's latest run, outside any database transaction.

A final job whose run's log the executor no longer keeps (pruned ``STARGATE_RUN_RETENTION`` after the job ended:
see :mod:`stargate.executors.retention`) is answered 410 with a sentence saying so, never an empty log; so is a log
the engine cannot serve because it is not UTF-8 text (Ray, for a run started before Stargate made its output valid
UTF-8): it never will, so a client does not wait for it as for an executor that fails (503)."""

from contextlib import suppress
from datetime import UTC, datetime

from stargate.executors import RunHandle
from stargate.executors.base import RunGoneError
from stargate.executors.log_text import LogNotTextError
from stargate.executors.retention import RETENTION_ENV, describe
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError, ServiceError, UnavailableError
from stargate.server.schemas import Logs
from stargate.server.services.jobs import get_visible
from stargate.store import JobStatus
from stargate.store.repositories import runs as run_repo


class LogGoneError(ServiceError):
    """The job's log cannot be had any more (410): no longer kept, or not text the engine can serve."""

    status = 410


def read(ctx: ServerContext, who: Principal, public_id: str, offset: int) -> Logs:
    """Log text of the job's latest attempt from byte ``offset``; ``complete`` once it is final and fully read."""
    with ctx.db.read() as session:
        job = get_visible(session, who, public_id)
        final = JobStatus(job.status).is_final()
        finished_at = job.finished_at
        run = run_repo.latest_for_job(session, job.id)
        kind, key = (run.executor, run.handle_key) if run is not None else ("", None)
        if key is not None:
            with suppress(NotFoundError):  # the executor's settings are the fleet in force's (read once per version)
                ctx.fleet.get(session)
    if key is None:
        return Logs(text="", next_offset=offset, complete=final)
    handle = RunHandle(executor=kind, key=key)
    try:
        executor = ctx.executor(kind)
        text, next_offset = executor.logs(handle, offset)
        complete = final and (text == "" or executor.logs(handle, next_offset)[0] == "")  # a last, empty page
    except RunGoneError:
        if not final:  # the engine lost a run still going: it is seen to by the scheduler; nothing to read yet
            return Logs(text="", next_offset=offset, complete=False)
        raise LogGoneError(gone(ctx, public_id, kind, finished_at)) from None
    except LogNotTextError as exc:
        shown = found_text(public_id)[1:-1]
        raise LogGoneError(f"the log of job {shown} cannot be read: executor '{kind}': {exc}") from None
    except Exception as exc:  # the executor's own failure: report it, do not fail the server
        raise UnavailableError(f"logs of job {found_text(public_id)[1:-1]}: executor '{kind}' failed: {exc}") from None
    return Logs(text=text, next_offset=next_offset, complete=complete)


def gone(ctx: ServerContext, public_id: str, executor: str, finished_at: datetime | None) -> str:
    """Why the log of a final job is no longer there: pruned after the retention when the job ended at least that
    long ago, else removed outside Stargate."""
    shown = found_text(public_id)[1:-1]
    retention = ctx.settings.run_retention_s
    if finished_at is not None and retention is not None:
        ended = finished_at if finished_at.tzinfo else finished_at.replace(tzinfo=UTC)
        if (datetime.now(UTC) - ended).total_seconds() >= retention:
            return (
                f"the log of job {shown} was pruned {describe(retention)} after the job ended "
                f"({ended:%Y-%m-%d %H:%M} UTC): executor '{executor}' keeps a finished run's log and records that "
                f"long ({RETENTION_ENV})"
            )
    return (
        f"the log of job {shown} is no longer kept by executor '{executor}' (removed outside "
        "Stargate, or lost by its engine)"
    )

"""Job logs: read from the executor of the job's latest run, outside any database transaction."""

from contextlib import suppress

from stargate.executors import RunHandle
from stargate.fleetfile.describe import found_text
from stargate.server.auth import Principal
from stargate.server.context import ServerContext
from stargate.server.errors import NotFoundError, UnavailableError
from stargate.server.schemas import Logs
from stargate.server.services.jobs import get_visible
from stargate.store import JobStatus
from stargate.store.repositories import runs as run_repo


def read(ctx: ServerContext, who: Principal, public_id: str, offset: int) -> Logs:
    """Log text of the job's latest attempt from byte ``offset``; ``complete`` once it is final and fully read."""
    with ctx.db.read() as session:
        job = get_visible(session, who, public_id)
        final = JobStatus(job.status).is_final()
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
    except Exception as exc:  # the executor's own failure: report it, do not fail the server
        raise UnavailableError(f"logs of job {found_text(public_id)[1:-1]}: executor '{kind}' failed: {exc}") from None
    return Logs(text=text, next_offset=next_offset, complete=complete)

"""Errors the services raise; the app turns each into an HTTP status with ``{"detail": "..."}``. Also what counts
as "the database is unavailable" (503, one log line) and how such a failure is said in one line."""

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


class ServiceError(Exception):
    """Base of expected, user-facing errors; ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequestError(ServiceError):
    """The request is malformed in a way validation did not catch (400)."""

    status = 400


class UnauthorizedError(ServiceError):
    """No token, or an unknown or revoked one (401)."""

    status = 401


class ForbiddenError(ServiceError):
    """The token's role or team does not allow this (403)."""

    status = 403


class NotFoundError(ServiceError):
    """No such thing, or not one the caller may see (404)."""

    status = 404


class ConflictError(ServiceError):
    """The request conflicts with the current state, e.g. a stale plan or a final job (409)."""

    status = 409


class InvalidError(ServiceError):
    """The body is well-formed but refers to something that does not exist or is not allowed (422)."""

    status = 422


class UnavailableError(ServiceError):
    """A backend the answer depends on (an executor) failed or is missing (503)."""

    status = 503


DATABASE_DOWN = (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
"""What SQLAlchemy raises when the database cannot be reached or used (down, unreachable, unreadable, locked,
pool exhausted): answered 503 with ``Retry-After``, never 500."""


def database_problem(exc: BaseException) -> str:
    """One line saying why the database failed: the driver's first line, without SQLAlchemy's SQL and links."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    first = lines[0] if lines else type(cause).__name__
    first = first.split(" [SQL:", 1)[0].split("(Background on this error", 1)[0].strip()
    text = f"{type(cause).__name__}: {first}"
    return text if len(text) <= 200 else text[:199] + "…"

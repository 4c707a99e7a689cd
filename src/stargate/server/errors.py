"""Errors the services raise; the app turns each into an HTTP status with ``{"detail": "..."}``."""


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

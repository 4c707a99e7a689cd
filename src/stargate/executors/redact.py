"""Secrets out of error text: an engine (or a proxy before it) may echo the ``Authorization`` header it was sent in
the body of an error answer, and the executors put part of such bodies in their errors, which reach the event log
and the stored health streaks. Each executor takes its own token out of any such text first (before cutting it
short, so that no part of a token is left)."""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "<redacted>"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with each of ``secrets`` (longest first; empty ones ignored) replaced by ``<redacted>``: a token
    given alone also takes it out of ``Bearer <token>``."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def credentials(authorization: str | None) -> tuple[str, ...]:
    """The secrets of an ``Authorization`` header value (``Bearer <token>``: the value and the token)."""
    if not authorization or not authorization.strip():
        return ()
    value = authorization.strip()
    scheme_and_token = value.split(None, 1)
    return (value, scheme_and_token[1]) if len(scheme_and_token) == 2 else (value,)

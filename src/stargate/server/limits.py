"""Request size limits of the API: the defaults and how the environment sets them.

A body over its limit is answered 413 before it is read into memory (see :class:`stargate.server.app.BodyLimit`).
"""

from collections.abc import Mapping

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""The largest request body the API reads, bytes (1 MiB; a job spec is at most about 340 KiB)."""

DEFAULT_MAX_PLAN_BODY_BYTES = 8_388_608
"""The largest body of ``POST /api/v1/fleet/plan``, bytes (8 MiB: a fleet of 1,000 clusters is about 225 KB as
JSON, so the 10,000 clusters a fleet may hold fit with room to spare); granted only to requests with a token."""

MAX_PATH_BYTES = 2_048
"""The longest request path (without the query), bytes; a longer one gets 414."""

MIN_BODY_LIMIT, MAX_BODY_LIMIT = 1_024, 1_073_741_824
"""The range either limit may be set to, bytes (1 KiB to 1 GiB)."""

BODY_ENV, PLAN_BODY_ENV = "STARGATE_MAX_BODY_BYTES", "STARGATE_MAX_PLAN_BODY_BYTES"


class SettingsError(ValueError):
    """A setting from the environment is not a valid value; the message is one located line."""


def bytes_from_env(
    env: Mapping[str, str], name: str, default: int, low: int = MIN_BODY_LIMIT, high: int = MAX_BODY_LIMIT
) -> int:
    """The byte count in ``env[name]`` (``default`` when unset or empty), from ``low`` to ``high``;
    :class:`SettingsError` when invalid."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    expected = f"a whole number of bytes from {low:,} to {high:,}"
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name}: found '{raw[:40]}'; expected {expected}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}: found {value:,}; expected {expected}")
    return value

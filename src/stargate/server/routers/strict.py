"""Request bodies read strictly: a JSON object that names a key twice is refused (422), as the YAML loaders refuse
a mapping with a key twice, instead of the last value silently winning.

Every ``/api/v1`` router is made with ``route_class=StrictJsonRoute``. The check is an ``object_pairs_hook`` of
``json.loads``: a few microseconds per object, nothing measurable next to a submission (5,000 submissions through
the test harness took the same time with and without it, within the run-to-run spread).
"""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from stargate.fleetfile.describe import found_text


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object of ``pairs``; 422 when a key comes twice."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise HTTPException(422, f"body: found the key {found_text(key)} twice, expected each key once")
        found[key] = value
    return found


def _first(exc: Exception) -> str:
    """The first sentence of an error, shortened."""
    text = str(exc).split(";", 1)[0].split(". ", 1)[0].strip()
    return text if len(text) <= 120 else text[:119] + "…"


class StrictJsonRequest(Request):
    """A request whose JSON body may not repeat a key in any object."""

    async def json(self) -> Any:
        """The body parsed as JSON; 422 for a repeated key, an integer too long or nesting too deep for Python
        (``json.JSONDecodeError`` for text that is not JSON)."""
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, object_pairs_hook=_unique)
            except json.JSONDecodeError:
                raise  # FastAPI's located 422 (the character offset)
            except RecursionError:
                raise HTTPException(
                    422, "body: found JSON nested too deep to read, expected a JSON body a few levels deep"
                ) from None
            except ValueError as exc:  # e.g. an integer of more than 4,300 digits
                raise HTTPException(
                    422, f"body: found JSON Python cannot read ({_first(exc)}), expected a job spec"
                ) from None
        return self._json


class StrictJsonRoute(APIRoute):
    """A route that reads its JSON body with :class:`StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given a :class:`StrictJsonRequest` over the same connection."""
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive, request._send))

        return strict

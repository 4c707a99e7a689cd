"""The client's calls for contracts, procurement, the budget and costs (a base of
:class:`stargate.client.StargateClient`, which gives it ``_call`` and the HTTP client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any, cast
from urllib.parse import quote

import httpx


def _present(params: Mapping[str, str | int | None]) -> dict[str, str | int]:
    """Query parameters without the unset (None) ones."""
    return {k: v for k, v in params.items() if v is not None}


def _segment(value: str) -> str:
    """An id as one URL path segment (escaped, so an id can never reach another route)."""
    return quote(value, safe="")


class MoneyApi:
    """``/api/v1/contracts``, ``/procurement/...``, ``/budget`` and ``/costs...``."""

    url: str
    _http: httpx.Client

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError  # StargateClient's

    def contracts(self) -> list[dict[str, Any]]:
        """``GET /api/v1/contracts``: the fleet's contracts, with what was spent under each (admin)."""
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/contracts"))

    def capacity_requests(self) -> list[dict[str, Any]]:
        """``GET /api/v1/procurement/requests``: every capacity request, newest first."""
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/procurement/requests"))

    def raise_request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/procurement/requests``: the request after the step, and its events (admin)."""
        return cast(dict[str, Any], self._call("POST", "/api/v1/procurement/requests", json=dict(body)))

    def offers(self, state: str | None = None) -> list[dict[str, Any]]:
        """``GET /api/v1/procurement/offers``: offers to right-of-first-refusal holders, newest first."""
        return cast(
            list[dict[str, Any]], self._call("GET", "/api/v1/procurement/offers", params=_present({"state": state}))
        )

    def respond(self, offer_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/procurement/offers/{id}/respond``: the holder's answer (a provider token of the holder)."""
        path = f"/api/v1/procurement/offers/{_segment(offer_id)}/respond"
        return cast(dict[str, Any], self._call("POST", path, json=dict(body)))

    def quotes(self) -> list[dict[str, Any]]:
        """``GET /api/v1/procurement/quotes``: the market's quotes."""
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/procurement/quotes"))

    def add_quote(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/procurement/quotes``: the quote and the events it set off (admin)."""
        return cast(dict[str, Any], self._call("POST", "/api/v1/procurement/quotes", json=dict(body)))

    def override(self, request_id: str, reason: str) -> dict[str, Any]:
        """``POST /api/v1/procurement/requests/{id}/override``: award an over-budget request anyway (admin)."""
        path = f"/api/v1/procurement/requests/{_segment(request_id)}/override"
        return cast(dict[str, Any], self._call("POST", path, json={"reason": reason}))

    def procurement_events(
        self, *, request_id: str | None = None, after: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """``GET /api/v1/procurement/events``: procurement steps, oldest first."""
        params = _present({"request_id": request_id, "after": after, "limit": limit})
        return cast(dict[str, Any], self._call("GET", "/api/v1/procurement/events", params=params))

    def budget(self) -> dict[str, Any]:
        """``GET /api/v1/budget``: draws, drawn, headroom, beyond the initial envelope, conflicts."""
        return cast(dict[str, Any], self._call("GET", "/api/v1/budget"))

    def costs(self, by: str = "team", since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """``GET /api/v1/costs``: costs grouped by team, contract, provider, day, queue or job."""
        params = _present({"by": by, "since": since, "until": until})
        return cast(dict[str, Any], self._call("GET", "/api/v1/costs", params=params))

    def focus_export(
        self, out: IO[bytes], since: str | None = None, until: str | None = None, billing_account: str | None = None
    ) -> int:
        """``GET /api/v1/costs/focus``: the FOCUS CSV written to ``out`` as it streams; the bytes written."""
        from stargate import client  # its errors (this module is imported by it)

        params = _present({"since": since, "until": until, "billing_account": billing_account})
        try:
            with self._http.stream("GET", "/api/v1/costs/focus", params=params) as response:
                if not response.is_success:
                    response.read()
                    raise client.error_for(response)
                written = 0
                for block in response.iter_bytes():
                    out.write(block)
                    written += len(block)
                return written
        except httpx.TransportError as exc:
            raise client.ServerUnreachableError(client.unreachable_message(self.url, exc)) from exc

    def reconcile(self, bill: bytes) -> dict[str, Any]:
        """``POST /api/v1/costs/reconcile``: a FOCUS bill (CSV bytes) compared with the ledger (admin)."""
        headers = {"Content-Type": "text/csv"}
        return cast(dict[str, Any], self._call("POST", "/api/v1/costs/reconcile", content=bill, headers=headers))

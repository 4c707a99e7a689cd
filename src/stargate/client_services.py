"""The client's calls for inference services (a base of :class:`stargate.client.StargateClient`, which gives it
``_call`` and ``_call_status``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote


class ServicesApi:
    """``/api/v1/services``."""

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError  # StargateClient's

    def _call_status(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        raise NotImplementedError  # StargateClient's

    def create_service(self, spec: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """``POST /api/v1/services`` with a ServiceSpec as JSON: (the service, True when it is new; False when the
        same spec was sent before)."""
        status, body = self._call_status("POST", "/api/v1/services", json=dict(spec))
        return cast(dict[str, Any], body), status == 201

    def services(self) -> list[dict[str, Any]]:
        """``GET /api/v1/services``: every service the token may see, by name."""
        return cast(list[dict[str, Any]], self._call("GET", "/api/v1/services"))

    def service(self, name: str) -> dict[str, Any]:
        """``GET /api/v1/services/{name}``: one service with its replicas, scale decisions and traffic."""
        return cast(dict[str, Any], self._call("GET", f"/api/v1/services/{quote(name, safe='')}"))

    def delete_service(self, name: str) -> dict[str, Any]:
        """``DELETE /api/v1/services/{name}``: the service, now draining its replicas."""
        return cast(dict[str, Any], self._call("DELETE", f"/api/v1/services/{quote(name, safe='')}"))

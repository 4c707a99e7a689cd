"""Routes of the web dashboard: ``/ui`` (the page), ``/ui/static/PATH`` (its modules and style sheet) and
``/ui/vendor/plotly-VERSION.min.js`` (the chart library from the installed plotly package).

No route here reads data or takes a token: the page asks the public API (``/api/v1``) with the token the user
typed, sent in the ``Authorization`` header only (never in a URL). The page's Content-Security-Policy lets it load
and connect to this server alone, so the browser refuses any request that would leave it.
"""

from functools import cache

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from stargate.fleetfile.describe import found_text
from stargate.server.errors import NotFoundError
from stargate.server.ui.assets import PLOTLY_NAME, Asset, load_plotly, load_static

router = APIRouter(include_in_schema=False)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""Only this server's own files and API (Plotly sets inline styles on what it draws, hence 'unsafe-inline' for
styles, never for scripts)."""

PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@cache
def _static() -> dict[str, Asset]:
    return load_static()


@cache
def _plotly() -> Asset:
    return load_plotly()


def _send(request: Request, asset: Asset, cache_control: str, extra: dict[str, str] | None = None) -> Response:
    """``asset`` gzipped when the client takes gzip, 304 when its ETag matches."""
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding", **(extra or {})}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.content_type, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


@router.get("/")
def root() -> RedirectResponse:
    """The server's root leads to the dashboard (a relative redirect: never built from the Host header)."""
    return RedirectResponse("/ui", status_code=307)


@router.get("/ui")
@router.get("/ui/")
def page(request: Request) -> Response:
    """The dashboard's one page (each view is a ``#/name`` of it)."""
    return _send(request, _static()["index.html"], "no-cache", PAGE_HEADERS)


@router.get(f"/ui/vendor/{PLOTLY_NAME}")
def plotly_bundle(request: Request) -> Response:
    """Plotly's bundle, cached for a year (its version is in its path)."""
    return _send(request, _plotly(), "public, max-age=31536000, immutable")


@router.get("/ui/static/{path:path}")
def static(request: Request, path: str) -> Response:
    """One of the dashboard's files (revalidated by its ETag on every load, so a new release shows at once)."""
    asset = _static().get(path)
    if asset is None:
        raise NotFoundError(f"path: found {found_text('/ui/static/' + path)}, expected a file of the dashboard")
    return _send(request, asset, "no-cache", {"X-Content-Type-Options": "nosniff"})

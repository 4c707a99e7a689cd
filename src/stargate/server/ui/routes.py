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


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` value takes gzip: named (or ``*``) with a q-value above 0."""
    chosen = None
    for part in header.split(","):
        name, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        name = name.lower()
        if name == "gzip":
            return q > 0
        if name == "*":
            chosen = q > 0
    return bool(chosen)


def etag_matches(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value names ``etag``: ``*``, or a list of tags compared weakly (RFC 9110)."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _send(request: Request, asset: Asset, cache_control: str, extra: dict[str, str] | None = None) -> Response:
    """``asset`` gzipped when the client takes gzip, 304 when its ETag matches; headers only for HEAD."""
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding", **(extra or {})}
    if etag_matches(request.headers.get("if-none-match", ""), asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if accepts_gzip(request.headers.get("accept-encoding", "")):
        headers["Content-Encoding"] = "gzip"
        body = asset.gzipped
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(None, media_type=asset.content_type, headers=headers)
    return Response(body, media_type=asset.content_type, headers=headers)


@router.get("/")
def root() -> RedirectResponse:
    """The server's root leads to the dashboard (a relative redirect: never built from the Host header)."""
    return RedirectResponse("/ui", status_code=307)


@router.api_route("/ui", methods=["GET", "HEAD"])
@router.api_route("/ui/", methods=["GET", "HEAD"])
def page(request: Request) -> Response:
    """The dashboard's one page (each view is a ``#/name`` of it)."""
    return _send(request, _static()["index.html"], "no-cache", PAGE_HEADERS)


@router.api_route(f"/ui/vendor/{PLOTLY_NAME}", methods=["GET", "HEAD"])
def plotly_bundle(request: Request) -> Response:
    """Plotly's bundle, cached for a year (its version is in its path)."""
    return _send(request, _plotly(), "public, max-age=31536000, immutable", {"X-Content-Type-Options": "nosniff"})


@router.api_route("/ui/static/{path:path}", methods=["GET", "HEAD"])
def static(request: Request, path: str) -> Response:
    """One of the dashboard's files (revalidated by its ETag on every load, so a new release shows at once)."""
    asset = _static().get(path)
    if asset is None:
        raise NotFoundError(f"path: found {found_text('/ui/static/' + path)}, expected a file of the dashboard")
    return _send(request, asset, "no-cache", {"X-Content-Type-Options": "nosniff"})

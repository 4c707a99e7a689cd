"""The dashboard's files, read once from the package (and Plotly's JavaScript from the installed plotly package:
never a CDN), each kept with its gzip form, its ETag and its content type."""

import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import plotly

STATIC = Path(__file__).with_name("static")
"""The dashboard's own files: index.html, the ES modules, the style sheet."""

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

PLOTLY_NAME = f"plotly-{plotly.__version__}.min.js"
"""The path of Plotly's bundle under ``/ui/vendor/``: the version in the name, so it may be cached for ever."""


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, the same gzipped, a strong ETag, its content type."""

    body: bytes
    gzipped: bytes
    etag: str
    content_type: str

    @classmethod
    def of(cls, body: bytes, suffix: str) -> "Asset":
        """The asset of ``body`` with the content type of ``suffix``."""
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        return cls(body, gzip.compress(body, compresslevel=9, mtime=0), etag, TYPES[suffix])


def load_static() -> dict[str, Asset]:
    """Every file of the dashboard, by its path under ``/ui/static/`` (``pages/fleet.js``)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            body = path.read_bytes()
            if path.name == "index.html":  # the page names the bundle of the installed plotly
                body = body.replace(b"{{PLOTLY}}", PLOTLY_NAME.encode())
            found[path.relative_to(STATIC).as_posix()] = Asset.of(body, path.suffix)
    return found


def load_plotly() -> Asset:
    """Plotly's minified bundle from the installed package."""
    source = resources.files("plotly") / "package_data" / "plotly.min.js"
    return Asset.of(source.read_bytes(), ".js")

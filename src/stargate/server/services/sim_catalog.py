"""What a simulation may replay and on which fleet: the traces of the server's traces directory
(``STARGATE_TRACES_DIR``) and of the bundled examples, and the bundled example fleets.

A request names a trace or a fleet only by a name of these listings; no path a request gives is ever opened. A
trace's format is told by its header (the columns each reader needs: philly, alibaba-openb, native CSV; a
``.jsonl`` file is native); files that are none of these (an openb node list, a request trace) are not offered. A
file reached through a link that leaves its directory is not offered either.
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stargate.traces import native, openb, philly

log = logging.getLogger("stargate.server")

TRACES_ENV = "STARGATE_TRACES_DIR"
EXAMPLES = Path(__file__).resolve().parents[4] / "examples"
"""The bundled examples of the source tree this package runs from (``examples/`` at the repository's root)."""
MAX_FILES = 1_000
"""The most files of a directory looked at (a listing stays quick)."""
MAX_DEPTH = 3
"""How deep below a directory trace files are looked for."""
_HEADER_BYTES = 65_536


@dataclass(frozen=True, slots=True)
class Known:
    """A trace the server offers: its name in requests, format, file and where it comes from."""

    name: str
    format: str
    path: Path
    bytes: int
    source: str


def traces_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The directory ``STARGATE_TRACES_DIR`` names (None when unset, or not a directory: logged)."""
    raw = (os.environ if env is None else env).get(TRACES_ENV, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_dir():
        log.warning("%s: found '%s', expected a directory; only the example traces are offered", TRACES_ENV, raw)
        return None
    return path


def traces(directory: Path | None, examples: Path = EXAMPLES) -> dict[str, Known]:
    """Every trace offered, by name: the directory's (names relative to it) then the examples' (``examples/...``)."""
    found: dict[str, Known] = {}
    for root, prefix, source in ((directory, "", "traces_dir"), (examples, "examples/", "examples")):
        if root is None or not root.is_dir():
            continue
        for path in _files(root):
            fmt = sniff(path)
            name = prefix + path.relative_to(root).as_posix()
            if fmt is not None and name not in found:
                found[name] = Known(name, fmt, path, path.stat().st_size, source)
    return dict(sorted(found.items()))


def fleets(examples: Path = EXAMPLES) -> dict[str, Path]:
    """The bundled example fleets by name (``examples/<dir>``): directories holding ``fleet.yaml`` or
    ``00-fleet.yaml``."""
    if not examples.is_dir():
        return {}
    return {
        f"examples/{d.name}": d
        for d in sorted(examples.iterdir())
        if d.is_dir() and ((d / "fleet.yaml").is_file() or (d / "00-fleet.yaml").is_file())
    }


def _files(root: Path) -> list[Path]:
    """The .csv and .jsonl files below ``root`` (at most :data:`MAX_DEPTH` deep, :data:`MAX_FILES` of them), none
    reached through a link that leaves ``root``."""
    real_root = root.resolve()
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= MAX_DEPTH:
            dirnames.clear()
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix.lower() in (".csv", ".jsonl") and path.resolve().is_relative_to(real_root):
                out.append(path)
            if len(out) >= MAX_FILES:
                return out
    return out


def sniff(path: Path) -> str | None:
    """The trace format of ``path`` told by its first line, or None when it is not a trace the readers take."""
    if path.suffix.lower() == ".jsonl":
        return "native"
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as stream:
            first = stream.readline(_HEADER_BYTES)
    except OSError:
        return None
    columns = {c.strip() for c in first.strip().split(",")}
    if set(philly.REQUIRED) <= columns:
        return "philly"
    if set(openb.REQUIRED) <= columns:
        return "alibaba-openb"
    if set(native.REQUIRED) <= columns and columns & set(native.SUBMIT_COLUMNS):
        return "native"
    return None

"""Reading a fleet path: one YAML file, or every ``*.yaml`` / ``*.yml`` file of a directory (not recursive)."""

from pathlib import Path

from stargate.domain.fleet import Fleet
from stargate.fleetfile.errors import LocatedProblem
from stargate.fleetfile.yamldoc import DOCUMENT, MAX_DOCUMENT_BYTES, YamlDoc, parse_yaml, scalar_fields, too_large

SUFFIXES = (".yaml", ".yml")
"""File name endings read from a fleet directory."""

MAX_FILES = 1_000
"""The most YAML files a fleet directory may hold, files."""


def fleet_files(path: Path) -> list[Path]:
    """The files a fleet path stands for: the file itself, or a directory's YAML files sorted by name."""
    if path.is_dir():
        return sorted((p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file()), key=lambda p: p.name)
    return [path]


def read_docs(path: Path) -> tuple[list[YamlDoc], list[LocatedProblem]]:
    """Parse every file of a fleet path; a missing path, an empty directory or an unreadable file is a problem."""
    where = str(path)
    if not path.exists():
        return [], [LocatedProblem(where, 0, 0, DOCUMENT, "no such file or directory", _WANTED)]
    try:
        files = fleet_files(path)
    except OSError as exc:
        return [], [LocatedProblem(where, 0, 0, DOCUMENT, f"a directory that cannot be read ({exc.strerror})", _WANTED)]
    if not files:
        return [], [LocatedProblem(where, 0, 0, DOCUMENT, "a directory with no *.yaml or *.yml files", _WANTED)]
    if len(files) > MAX_FILES:
        found = f"a directory with {len(files):,} *.yaml or *.yml files"
        return [], [LocatedProblem(where, 0, 0, DOCUMENT, found, f"at most {MAX_FILES:,} fleet files in a directory")]
    docs: list[YamlDoc] = []
    problems: list[LocatedProblem] = []
    for file in files:
        text, problem = _read_text(file)
        if problem is not None:
            problems.append(problem)
        else:
            docs.append(parse_yaml(text, str(file), scalar_fields(Fleet)))
    return docs, problems


_WANTED = "a fleet YAML file, or a directory of *.yaml / *.yml fleet files"


def read_limited(file: Path) -> bytes | int:
    """The bytes of ``file``, or its size when it is over :data:`MAX_DOCUMENT_BYTES` (read no further than that)."""
    with file.open("rb") as handle:
        raw = handle.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            size = file.stat().st_size
            return max(size, len(raw))
    return raw


def _read_text(file: Path) -> tuple[str, LocatedProblem | None]:
    try:
        raw = read_limited(file)
    except OSError as exc:
        return "", LocatedProblem(str(file), 0, 0, DOCUMENT, f"a file that cannot be read ({exc.strerror})", _WANTED)
    if isinstance(raw, int):
        return "", too_large(str(file), raw)
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        found = f"byte 0x{raw[exc.start]:02x}, which is not UTF-8"
        return "", LocatedProblem(str(file), line, column, DOCUMENT, found, "a UTF-8 text file")

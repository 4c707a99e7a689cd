"""Reading a fleet path: one YAML file, or every ``*.yaml`` / ``*.yml`` file of a directory (not recursive) except
plan scenarios (``plan.yaml``, ``plan-*.yaml``: see :func:`is_plan_file`)."""

import stat
from pathlib import Path

from stargate.domain.fleet import Fleet
from stargate.fleetfile.errors import LocatedProblem
from stargate.fleetfile.yamldoc import DOCUMENT, MAX_DOCUMENT_BYTES, YamlDoc, parse_yaml, scalar_fields, too_large

SUFFIXES = (".yaml", ".yml")
"""File name endings read from a fleet directory."""

PLAN_STEM = "plan"
"""A directory entry named ``plan.yaml`` / ``plan.yml`` or ``plan-NAME.yaml`` / ``plan-NAME.yml`` is a plan scenario
(it names the fleet it plans for, often its own directory), never a fleet file."""

MAX_FILES = 1_000
"""The most YAML files a fleet directory may hold, files."""


def fleet_files(path: Path) -> list[Path]:
    """The files a fleet path stands for: the file itself, or a directory's ``*.yaml`` / ``*.yml`` entries sorted
    by name (every such entry, even one that is not a regular file: reading it then says what it is), plan
    scenarios left out (:func:`is_plan_file`). A path naming a file is read whatever its name."""
    if path.is_dir():
        entries = (p for p in path.iterdir() if p.suffix in SUFFIXES and not is_plan_file(p))
        return sorted(entries, key=lambda p: p.name)
    return [path]


def is_plan_file(path: Path) -> bool:
    """Whether a directory entry is a plan scenario: ``plan.yaml``, ``plan.yml``, ``plan-NAME.yaml`` or
    ``plan-NAME.yml`` (a fleet directory skips it)."""
    return path.suffix in SUFFIXES and (path.stem == PLAN_STEM or path.stem.startswith(PLAN_STEM + "-"))


def not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file one can read without waiting (a FIFO, a device, a socket, a
    directory, a dangling symbolic link), or None for a regular file (or one that is missing: reading says so)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a symbolic link to a missing file" if path.is_symlink() else None
    except OSError:
        return None  # reading it will report the error
    if stat.S_ISREG(mode):
        return None
    kinds = [
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((words for test, words in kinds if test(mode)), "not a regular file")


def read_docs(path: Path) -> tuple[list[YamlDoc], list[LocatedProblem]]:
    """Parse every file of a fleet path; a missing path, an empty directory or an unreadable file is a problem."""
    where = str(path)
    if not path.exists():
        found = "a symbolic link to a missing file" if path.is_symlink() else "no such file or directory"
        return [], [LocatedProblem(where, 0, 0, DOCUMENT, found, _WANTED)]
    kind = None if path.is_dir() else not_a_file(path)
    if kind is not None:
        return [], [LocatedProblem(where, 0, 0, DOCUMENT, kind, _WANTED)]
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
        kind = not_a_file(file)
        if kind is not None:
            problems.append(LocatedProblem(str(file), 0, 0, DOCUMENT, kind, "a regular YAML file"))
            continue
        text, problem = _read_text(file)
        if problem is not None:
            problems.append(problem)
        else:
            docs.append(parse_yaml(text, str(file), scalar_fields(Fleet)))
    return docs, problems


_WANTED = "a fleet YAML file, or a directory of *.yaml / *.yml fleet files"


class NotAFileError(OSError):
    """A path that is not a regular file (its ``strerror`` says what it is)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.strerror = kind


def read_limited(file: Path) -> bytes | int:
    """The bytes of ``file``, or its size when it is over :data:`MAX_DOCUMENT_BYTES` (read no further than that).

    Only a regular file is opened (opening a FIFO would wait for a writer for ever): anything else is an OSError
    naming what it is.
    """
    kind = not_a_file(file)
    if kind is not None:
        raise NotAFileError(kind)
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

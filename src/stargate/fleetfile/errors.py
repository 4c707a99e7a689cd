"""Located problems with a fleet file and the error that carries them.

A :class:`LocatedProblem` says where (file, line, column, field path), what was found and what was expected. Line
and column are 1-based; line 0 means the file (or path) as a whole, e.g. when it does not exist.
"""

from dataclasses import asdict, dataclass

from stargate.domain.base import visible


@dataclass(frozen=True, slots=True)
class LocatedProblem:
    """One thing wrong with a fleet file, located by file, line, column and field path."""

    file: str
    line: int
    column: int
    path: str
    found: str
    expected: str

    def __str__(self) -> str:
        """The problem as one line: ``FILE:LINE:COL: PATH: found X; expected Y`` (the file name with its non-printable
        characters escaped; the path, found and expected parts are escaped where they are made)."""
        where = f"{visible(self.file)}:{self.line}:{self.column}: {self.path}"
        return f"{where}: found {self.found}; expected {self.expected}"

    def to_json(self) -> dict[str, str | int]:
        """The problem as a JSON object with keys file, line, column, path, found, expected."""
        return asdict(self)


class FleetFileError(Exception):
    """A fleet file (or directory) is not a valid fleet; ``problems`` lists every problem, sorted by place."""

    def __init__(self, problems: list[LocatedProblem]) -> None:
        self.problems = sort_problems(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the fleet file")


def sort_problems(problems: list[LocatedProblem]) -> list[LocatedProblem]:
    """Problems ordered by file, then line, then column; ties keep their order (stable)."""
    return sorted(problems, key=lambda p: (p.file, p.line, p.column))

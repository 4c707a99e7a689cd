"""A located problem with user input: where it is, what was found, what was expected."""

from dataclasses import dataclass

Path = tuple[str | int, ...]
"""A field path inside a document, e.g. ``("clusters", 3, "gpu_model")``."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located by its field path."""

    path: Path
    found: str
    expected: str

    def dotted(self) -> str:
        """The path as ``clusters[3].gpu_model``."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "(document)"

"""A located problem with user input: where it is, what was found, what was expected."""

from dataclasses import dataclass

from stargate.domain.base import visible

Path = tuple[str | int, ...]
"""A field path inside a document, e.g. ``("clusters", 3, "gpu_model")``."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located by its field path."""

    path: Path
    found: str
    expected: str

    def dotted(self) -> str:
        """The path as ``clusters[3].gpu_model``; a key's control, hidden and bidirectional characters are shown as
        escapes (``\\x1b``, ``\\u202e``): a key is the user's text, and the path is printed on terminals."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{visible(part)}" if out else visible(part))
        return out or "(document)"

"""Identifiers: short, lowercase, stable names used for cross-references in fleet files and the API; one type,
:data:`Id`, for every kind of id."""

from typing import Annotated

from pydantic import StringConstraints

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""An id: 1–63 characters, lowercase letters, digits, '.', '_' or '-', starting with a letter or digit."""

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

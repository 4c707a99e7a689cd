"""Typed identifiers: short, lowercase, stable names used for cross-references in fleet files and the API."""

from typing import Annotated, NewType

from pydantic import StringConstraints

ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
"""An id: 1–63 characters, lowercase letters, digits, '.', '_' or '-', starting with a letter or digit."""

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

ProviderId = NewType("ProviderId", str)
SiteId = NewType("SiteId", str)
BuildingId = NewType("BuildingId", str)
ClusterId = NewType("ClusterId", str)
ContractId = NewType("ContractId", str)
TeamId = NewType("TeamId", str)
QueueId = NewType("QueueId", str)
JobId = NewType("JobId", str)
GpuModelName = NewType("GpuModelName", str)

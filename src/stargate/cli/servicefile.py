"""Services files: one service spec, or several under ``services:``, read and validated with located problems.

A services file is either a single :class:`~stargate.domain.services.ServiceSpec` (a mapping with ``name``,
``queue``, ...), or a mapping whose only key is ``services``, a list of them with distinct names. Problems read like
a job file's (:mod:`stargate.cli.jobfile`): ``services.yaml:12:5: services[1].objective.ttft_s: found -1; expected
a number greater than 0 and at most 86400``.
"""

from pathlib import Path

from pydantic import Field, model_validator

from stargate.cli.jobfile import SpecFileError, loads_spec, parse_mapping, read_spec_text
from stargate.domain.base import Model
from stargate.domain.services import ServiceSpec

MAX_SERVICES = 1_000
"""The most services one file may hold."""

_SHAPE = (
    "a service spec (a mapping with at least name, queue, gpus_per_replica, objective and profiles) or a "
    "mapping with one key, services, listing service specs"
)


class ServiceFileError(SpecFileError):
    """A services file is missing, unreadable or holds no valid service spec."""

    noun = "services file"


class ServicesFile(Model):
    """Several services in one file."""

    services: list[ServiceSpec] = Field(
        max_length=MAX_SERVICES, description="The services, 1 to 1,000, with distinct names."
    )

    @model_validator(mode="after")
    def _distinct(self) -> "ServicesFile":
        if not self.services:
            raise ValueError("found an empty list of services, expected at least one service spec")
        names = [s.name for s in self.services]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"found two services named {', '.join(twice)}, expected distinct names")
        return self


def load_services_file(path: Path) -> list[ServiceSpec]:
    """The services in the YAML file ``path``; :class:`ServiceFileError` with located problems when it holds none."""
    return loads_services(read_spec_text(path, "services YAML file", ServiceFileError), str(path))


def loads_services(text: str, file: str = "<string>") -> list[ServiceSpec]:
    """The services in YAML ``text`` (named ``file`` in problems); :class:`ServiceFileError` when it holds none."""
    doc = parse_mapping(text, file, ServiceSpec, _SHAPE, ServiceFileError)
    if "services" in doc.data:
        return loads_spec(text, ServicesFile, _SHAPE, ServiceFileError, file).services
    return [loads_spec(text, ServiceSpec, _SHAPE, ServiceFileError, file)]

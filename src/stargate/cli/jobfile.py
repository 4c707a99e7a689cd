"""Spec files: a YAML document read and validated against a pydantic model on the user's machine, every problem
located (file, line, field).

Reuses the fleet file's YAML position helpers, so a spec file's errors read exactly like a fleet file's:
``jobs/train.yaml:4:3: gpus: found 'eight'; expected an integer from 0 to 1000000``. :func:`load_spec_file` and
:func:`loads_spec` read any model; job files (:func:`load_job_file`) and service files
(:mod:`stargate.cli.servicefile`) are two uses of them.
"""

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stargate.domain import JobSpec
from stargate.fleetfile.describe import error_words
from stargate.fleetfile.errors import LocatedProblem, sort_problems
from stargate.fleetfile.sources import NotAFileError, read_limited
from stargate.fleetfile.yamldoc import DOCUMENT, Position, dotted, locate, parse_yaml, scalar_fields, too_large

M = TypeVar("M", bound=BaseModel)

_JOB_SHAPE = "a job spec: a mapping with at least name, queue and gpus (and usually command)"


class SpecFileError(Exception):
    """A spec file is missing, unreadable or not valid; ``problems`` lists every problem, in file order."""

    noun = "spec file"
    """What the file is, in the message ('job file', 'services file')."""

    def __init__(self, problems: list[LocatedProblem]) -> None:
        self.problems = sort_problems(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the {self.noun}")


class JobFileError(SpecFileError):
    """A job file is missing, unreadable or not a valid JobSpec."""

    noun = "job file"


def read_spec_text(path: Path, what: str, error: type[SpecFileError]) -> str:
    """The UTF-8 text of the spec file ``path`` (``what``: e.g. 'job spec YAML file'); ``error`` with a located
    problem when it is missing, too large, not a regular file or not UTF-8."""
    file = str(path)
    try:
        raw = read_limited(path)
        if isinstance(raw, int):
            raise error([too_large(file, raw)])
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise error([LocatedProblem(file, 0, 0, DOCUMENT, "no such file", f"a {what}")]) from None
    except NotAFileError as exc:  # a FIFO or a device would make the read wait for ever
        raise error([LocatedProblem(file, 0, 0, DOCUMENT, str(exc.strerror), f"a regular {what}")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        found = f"a file that cannot be read ({exc})"
        raise error([LocatedProblem(file, 0, 0, DOCUMENT, found, "a UTF-8 text file")]) from None


def load_spec_file(path: Path, model: type[M], what: str, shape: str, error: type[SpecFileError]) -> M:
    """The ``model`` in the YAML file ``path`` (``what`` it is, e.g. 'job spec YAML file'); ``error`` with located
    problems when it is not one (``shape`` says what the top level must be)."""
    return loads_spec(read_spec_text(path, what, error), model, shape, error, str(path))


def parse_mapping(text: str, file: str, model: type[BaseModel], shape: str, error: type[SpecFileError]) -> Any:
    """The parsed YAML document of ``text`` whose top level must be a mapping (``shape``); ``error`` otherwise."""
    doc = parse_yaml(text, file, scalar_fields(model))
    if doc.problems:
        raise error(doc.problems)
    if not isinstance(doc.data, dict) or doc.node is None:
        found = "an empty document" if doc.data is None else f"a {type(doc.data).__name__} at the top level"
        line = Position.of(doc.node.start_mark).line if doc.node is not None else 1
        raise error([LocatedProblem(file, line, 1, DOCUMENT, found, shape)])
    return doc


def loads_spec(text: str, model: type[M], shape: str, error: type[SpecFileError], file: str = "<string>") -> M:
    """The ``model`` in YAML ``text`` (named ``file`` in problems); ``error`` with located problems when it is not
    one."""
    doc = parse_mapping(text, file, model, shape, error)
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        start = Position.of(doc.node.start_mark)
        raise error([problem_of(file, doc.node, start, err, model) for err in exc.errors()]) from None


def problem_of(file: str, node: Any, start: Position, err: Any, model: type[BaseModel]) -> LocatedProblem:
    """One pydantic error raised validating ``model`` as a problem located at its field's line."""
    loc = tuple(err["loc"])
    pos = locate(node, start, loc)
    if not loc and err["type"] == "value_error":
        # A whole-model rule (e.g. nothing to run): its message already reads "found …, expected …".
        found, _, expected = str(err["ctx"]["error"]).removeprefix("found ").partition(", expected ")
        return LocatedProblem(file, pos.line, pos.column, DOCUMENT, found, expected)
    found, expected = error_words(model, err)
    return LocatedProblem(file, pos.line, pos.column, dotted(loc), found, expected)


def load_job_file(path: Path) -> JobSpec:
    """The JobSpec in the YAML file ``path``; :class:`JobFileError` with located problems when it is not one."""
    return load_spec_file(path, JobSpec, "job spec YAML file", _JOB_SHAPE, JobFileError)


def loads_job(text: str, file: str = "<string>") -> JobSpec:
    """The JobSpec in YAML ``text`` (named ``file`` in problems); :class:`JobFileError` when it is not one."""
    return loads_spec(text, JobSpec, _JOB_SHAPE, JobFileError, file)

"""Job files: a YAML JobSpec read and validated on the user's machine, every problem located (file, line, field).

Reuses the fleet file's YAML position helpers, so a job file's errors read exactly like a fleet file's:
``jobs/train.yaml:4:3: gpus: found 'eight'; expected an integer from 0 to 1000000``.
"""

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from stargate.domain import JobSpec
from stargate.fleetfile.describe import error_words
from stargate.fleetfile.errors import LocatedProblem, sort_problems
from stargate.fleetfile.sources import NotAFileError, read_limited
from stargate.fleetfile.yamldoc import DOCUMENT, Position, dotted, locate, parse_yaml, scalar_fields, too_large

_SHAPE = "a job spec: a mapping with at least name, queue and gpus (and usually command)"


class JobFileError(Exception):
    """A job file is missing, unreadable or not a valid JobSpec; ``problems`` lists every problem, in file order."""

    def __init__(self, problems: list[LocatedProblem]) -> None:
        self.problems = sort_problems(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the job file")


def load_job_file(path: Path) -> JobSpec:
    """The JobSpec in the YAML file ``path``; :class:`JobFileError` with located problems when it is not one."""
    file = str(path)
    try:
        raw = read_limited(path)
        if isinstance(raw, int):
            raise JobFileError([too_large(file, raw)])
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise JobFileError([LocatedProblem(file, 0, 0, DOCUMENT, "no such file", "a job spec YAML file")]) from None
    except NotAFileError as exc:  # a FIFO or a device would make the read wait for ever
        found = str(exc.strerror)
        raise JobFileError([LocatedProblem(file, 0, 0, DOCUMENT, found, "a regular job spec YAML file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        found = f"a file that cannot be read ({exc})"
        raise JobFileError([LocatedProblem(file, 0, 0, DOCUMENT, found, "a UTF-8 text file")]) from None
    return loads_job(text, file)


def loads_job(text: str, file: str = "<string>") -> JobSpec:
    """The JobSpec in YAML ``text`` (named ``file`` in problems); :class:`JobFileError` when it is not one."""
    doc = parse_yaml(text, file, scalar_fields(JobSpec))
    if doc.problems:
        raise JobFileError(doc.problems)
    if not isinstance(doc.data, dict) or doc.node is None:
        found = "an empty document" if doc.data is None else f"a {type(doc.data).__name__} at the top level"
        line = Position.of(doc.node.start_mark).line if doc.node is not None else 1
        raise JobFileError([LocatedProblem(file, line, 1, DOCUMENT, found, _SHAPE)])
    try:
        return JobSpec.model_validate(doc.data)
    except ValidationError as exc:
        start = Position.of(doc.node.start_mark)
        raise JobFileError([_problem(file, doc.node, start, err) for err in exc.errors()]) from None


def _problem(file: str, node: Any, start: Position, err: Any) -> LocatedProblem:
    """One pydantic error as a problem located at its field's line."""
    loc = tuple(err["loc"])
    pos = locate(node, start, loc)
    if not loc and err["type"] == "value_error":
        # A whole-spec rule (e.g. nothing to run): its message already reads "found …, expected …".
        found, _, expected = str(err["ctx"]["error"]).removeprefix("found ").partition(", expected ")
        return LocatedProblem(file, pos.line, pos.column, DOCUMENT, found, expected)
    found, expected = error_words(JobSpec, err)
    return LocatedProblem(file, pos.line, pos.column, dotted(loc), found, expected)

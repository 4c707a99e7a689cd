"""Reason codes: the engine's codes are job reasons with the same values and meaning, every code is documented in
the source and in docs/reference/api.md, and a stored code this version lacks reads as ``other``."""

import ast
import inspect
import re
from enum import StrEnum
from itertools import pairwise
from pathlib import Path

import pytest

from stargate.domain.reasons import ENGINE_REASONS, JobReason, read_reason
from stargate.engine import Reason

API_DOC = Path(__file__).resolve().parents[3] / "docs" / "reference" / "api.md"


def member_docs(enum: type[StrEnum]) -> dict[str, str]:
    """Each member's attribute docstring (the string right after its assignment), by value."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(enum)))  # type: ignore[arg-type]
    body = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == enum.__name__).body
    docs: dict[str, str] = {}
    for node, after in pairwise(body):
        if isinstance(node, ast.Assign) and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            docs[getattr(enum, node.targets[0].id).value] = after.value.value  # type: ignore[attr-defined]
    return docs


def test_the_engine_decides_with_the_job_reasons_themselves() -> None:
    assert Reason is JobReason  # one enum: codes and meanings are written once
    engine_codes = {"exceeds_quota", "no_cluster_fits", "priority_class_not_allowed", "priority", "cluster_down"}
    assert engine_codes <= {r.value for r in ENGINE_REASONS}
    assert not {JobReason.SUBMITTED, JobReason.REQUEUED, JobReason.CLUSTER_REMOVED} & ENGINE_REASONS


def test_every_job_reason_has_a_docstring_and_a_short_lowercase_code() -> None:
    docs = member_docs(JobReason)
    assert set(docs) == {r.value for r in JobReason}
    for code, doc in docs.items():
        assert re.fullmatch(r"[a-z][a-z_]{1,39}", code), code
        assert doc.endswith(".") and "\n" not in doc, f"{code}: expected a one-line docstring, found {doc!r}"


def test_the_api_reference_explains_every_code() -> None:
    text = API_DOC.read_text()
    start = text.index("### Reason codes")
    table = text[start : text.index("\n#", start + 1)]
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)
    assert sorted(documented) == sorted(r.value for r in JobReason)


@pytest.mark.parametrize(
    ("code", "detail", "shown"),
    [
        ("placed", "on lab-a (8 GPUs)", (JobReason.PLACED, "on lab-a (8 GPUs)")),
        ("exceeds_quota", "", (JobReason.EXCEEDS_QUOTA, "")),
        ("throttled_by_power", "site lab at 100%", (JobReason.OTHER, "throttled_by_power: site lab at 100%")),
        ("throttled_by_power", "", (JobReason.OTHER, "throttled_by_power")),
    ],
)
def test_a_stored_code_reads_back_and_an_unknown_one_reads_as_other(
    code: str, detail: str, shown: tuple[JobReason, str]
) -> None:
    assert read_reason(code, detail) == shown

"""The wording of expected values derived from field types, and of found values."""

from datetime import date

import pytest

from stargate.domain import Building, Cluster, Contract, Fleet, Queue
from stargate.fleetfile.describe import expected_text, found_text, owner_model, resolve, unknown_key_expected


def _expected(model: type, *loc: str | int) -> str:
    found = resolve(model, loc)
    assert found is not None
    return expected_text(*found)


@pytest.mark.parametrize(
    ("model", "loc", "text"),
    [
        (Cluster, ("nodes",), "an integer greater than 0 and at most 10,000,000 (nodes)"),
        (Cluster, ("gpus_per_node",), "an integer greater than 0 and at most 1,024 (GPUs)"),
        (Cluster, ("status",), "one of 'up', 'degraded', 'down'"),
        (Cluster, ("online_from",), "a date as YYYY-MM-DD (ISO 8601) from 1970-01-01 to 2200-12-31, or null"),
        (
            Cluster,
            ("price_per_gpu_hour_usd",),
            "a number at least 0 and at most 100,000 with at most 6 decimal places (USD per GPU-hour)",
        ),
        (
            Contract,
            ("value_usd",),
            "a number at least 0 and at most 100,000,000,000,000 with at most 6 decimal places (USD), or null",
        ),
        (
            Contract,
            ("right_of_first_refusal", "response_window_days"),
            "an integer greater than 0 and at most 365 (days)",
        ),
        (Building, ("planned_energization",), "a date as YYYY-MM-DD (ISO 8601) from 1970-01-01 to 2200-12-31"),
        (Queue, ("quotas", 0, "gpus"), "an integer at least 0 and at most 100,000,000 (GPUs)"),
        (Queue, ("priority_classes",), "a list of ids (at most 1,000)"),
        (Fleet, ("clusters",), "a list of clusters (at most 10,000)"),
        (Fleet, ("priority_classes",), "a list of priority classes (at most 1,000)"),
        (Fleet, ("name",), "non-empty printable text on one line of at most 200 characters"),
        (Fleet, ("description",), "printable text of at most 10,000 characters"),
    ],
)
def test_expected_text_follows_the_field_type(model: type, loc: tuple[str | int, ...], text: str) -> None:
    """Each field's expected wording comes from its annotation and constraints."""
    assert _expected(model, *loc) == text


def test_resolve_returns_none_for_unknown_fields() -> None:
    """A location that is not a field resolves to None."""
    assert resolve(Cluster, ("nope",)) is None
    assert resolve(Fleet, ("clusters", "x")) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [("abc", "'abc'"), (3, "3"), (1.5, "1.5"), (True, "true"), (None, "null"), ({}, "a mapping"), ([], "a list"),
     ("x" * 100, "'" + "x" * 59 + "…'"), (date(2025, 1, 2), "2025-01-02")],
)  # fmt: skip
def test_found_text(value: object, text: str) -> None:
    """Found values: strings quoted, containers named, long strings cut."""
    assert found_text(value) == text


def test_unknown_key_suggests_the_closest_or_lists_all() -> None:
    """A near miss gets 'did you mean'; a far one gets the list of keys."""
    assert unknown_key_expected("nodez", Cluster) == "a known key of a cluster; did you mean 'nodes'?"
    assert unknown_key_expected("zzz", Queue) == (
        "one of the keys of a queue: id, team, cohort, quotas, priority_classes, default_priority_class"
    )


def test_owner_model_of_a_nested_key() -> None:
    """The owner of contracts[0].right_of_first_refusal.x is the clause model."""
    owner = owner_model(Fleet, ("contracts", 0, "right_of_first_refusal", "x"))
    assert owner is not None and owner.__name__ == "RightOfFirstRefusal"

"""A fleet that validates can take a job: no queue is left without a usable priority class or without any GPU it
could ever be admitted to. Legitimate choices (a 0 quota that borrows, a fleet without queues) still validate."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stargate.domain import JobSpec
from stargate.fleetfile import FleetFileError, loads_fleet
from stargate.server.auth import Principal, Role
from stargate.server.errors import InvalidError
from stargate.server.services.jobs import SubmitRules, check

SMALL = Path("tests/e2e/fleets/small.yaml").read_text()


def _problems(text: str) -> list[str]:
    with pytest.raises(FleetFileError) as caught:
        loads_fleet(text, "f.yaml")
    return [str(p) for p in caught.value.problems]


def test_an_empty_priority_class_list_is_refused_where_it_is_written() -> None:
    text = SMALL + "priority_classes: []\n"
    [said] = _problems(text)
    assert said.startswith(f"f.yaml:{len(text.splitlines())}:1: priority_classes: found no priority classes")


def test_no_priority_classes_without_queues_is_a_legitimate_fleet() -> None:
    text = SMALL[: SMALL.index("teams:")] + "priority_classes: []\n"
    assert loads_fleet(text).priority_classes == []


def test_a_queue_allowing_only_undefined_classes_is_refused() -> None:
    text = SMALL.replace("    cohort: lab\n", "    cohort: lab\n    priority_classes: [gold]\n", 1)
    [said] = _problems(text)
    assert "queues[0].priority_classes[0]: found 'gold'; expected the id of a priority class" in said


BETA_ZERO = SMALL.replace("gpus: 8", "gpus: 0")
"""Beta's only quota is 0 GPUs; it borrows alpha's 24 through cohort 'lab'."""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (BETA_ZERO.replace("gpus: 24", "gpus: 0"), "that cannot borrow"),  # nothing in the cohort to borrow
        (BETA_ZERO[::-1].replace("\nbal :trohoc    ", "", 1)[::-1], "without a cohort"),  # beta leaves the cohort
        (BETA_ZERO.replace("gpus: 0", "gpus: 0\n        borrowing_limit_gpus: 0"), "that cannot borrow"),
    ],
)
def test_a_queue_that_can_never_admit_a_gpu_is_refused(text: str, words: str) -> None:
    said = [p for p in _problems(text) if "queues[1]" in p]  # with both quotas at 0, alpha is refused as well
    assert len(said) == 1 and said[0].startswith("f.yaml:") and "queues[1].quotas: " in said[0], said
    assert words in said[0] and "found quotas of 0 GPUs" in said[0]


def test_a_zero_quota_that_borrows_from_its_cohort_is_a_legitimate_choice() -> None:
    fleet = loads_fleet(BETA_ZERO)
    assert [q.quotas[0].gpus for q in fleet.queues] == [24, 0]


def test_a_submission_without_a_usable_class_is_worded_found_expected() -> None:
    fleet = loads_fleet(SMALL.replace("    cohort: lab\n", "    cohort: lab\n    priority_classes: [high]\n", 1))
    who = Principal(token_id="t", name="n", team="alpha", role=Role.MEMBER)
    spec = JobSpec(name="j", queue="alpha-q", gpus=1, command="true", priority_class="low")
    with pytest.raises(InvalidError) as caught:
        check(who, spec, SubmitRules.of(fleet), datetime(2026, 1, 1, tzinfo=UTC))
    assert str(caught.value.detail if hasattr(caught.value, "detail") else caught.value) == (
        "body.priority_class: found 'low', expected a priority class the queue allows (high)"
    )

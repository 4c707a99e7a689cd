"""The job spec's node shape: spread and nodes, checked where they are written and carried to the engine."""

import pytest
from pydantic import ValidationError

from stargate.domain.jobs import JobSpec
from stargate.server.terms import SpecTerms


def _spec(**kw: object) -> JobSpec:
    return JobSpec.model_validate({"name": "n", "queue": "q", "gpus": 16, "command": "true", **kw})


def test_defaults_pack_on_nodes() -> None:
    spec = _spec()
    assert spec.spread is False and spec.nodes is None


def test_nodes_must_divide_gpus_and_the_error_names_the_field() -> None:
    assert _spec(nodes=2).nodes == 2
    with pytest.raises(ValidationError) as err:
        _spec(nodes=3)
    (problem,) = err.value.errors()
    assert problem["loc"] == ("nodes",)
    assert "found 3 nodes for 16 GPUs" in problem["msg"] and "divides gpus" in problem["msg"]


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "2"])
def test_nodes_is_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ValidationError) as err:
        _spec(nodes=bad)
    assert err.value.errors()[0]["loc"] == ("nodes",)


def test_spread_is_a_strict_boolean() -> None:
    assert _spec(spread=True).spread is True
    with pytest.raises(ValidationError):
        _spec(spread=1)


def test_the_stored_spec_carries_the_shape_to_the_engine_terms() -> None:
    spread = SpecTerms.of(_spec(spread=True).model_dump(mode="json"))
    assert spread.spread is True and spread.nodes is None
    nodes = SpecTerms.of(_spec(nodes=4).model_dump(mode="json"))
    assert nodes.spread is False and nodes.nodes == 4
    old = SpecTerms.of({"command": "true"})  # a spec stored before the fields existed
    assert old.spread is False and old.nodes is None


def test_a_job_cannot_ask_for_a_node_count_and_to_spread() -> None:
    with pytest.raises(ValidationError) as caught:
        JobSpec.model_validate({"name": "x", "queue": "q", "gpus": 4, "spread": True, "nodes": 2, "command": "true"})
    [problem] = caught.value.errors()
    assert problem["loc"] == ("nodes",) and "not both" in problem["msg"]

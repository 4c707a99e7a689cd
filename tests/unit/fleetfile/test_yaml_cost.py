"""The cost of a document within the limits is bounded: a list where one value is expected is refused before it is
built, a document of millions of small values is refused at the node cap, and a fleet holds at most 10,000 of each
entity (the design's scale is a few thousand clusters).

Before: a 7.8 MB file whose `description` was a list of 3.9 million integers took 37 s and 1.5 GB to be refused, and
a 100,000-cluster fleet was accepted (23 s, 885 MB to validate; an idle server then used 85% of a core).
"""

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from stargate.cli.jobfile import JobFileError, load_job_file
from stargate.domain import Fleet
from stargate.domain.limits import MAX_ENTITIES
from stargate.fleetfile import FleetFileError, load_fleet
from stargate.fleetfile.yamldoc import MAX_NODES

SMALL = Path("tests/e2e/fleets/small.yaml").read_text()


def _timed_problems(path: Path) -> tuple[float, list[str]]:
    started = time.perf_counter()
    with pytest.raises(FleetFileError) as caught:
        load_fleet(path)
    return time.perf_counter() - started, [str(p) for p in caught.value.problems]


def test_a_list_where_one_value_is_expected_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("name: x\ndescription: [" + ",".join(["1"] * 1_000_000) + "]\n")
    elapsed, [said] = _timed_problems(path)
    assert said == f"{path}:2:14: description: found a list; expected a single value (text, a number, a date or a flag)"
    assert elapsed < 1.0  # the 1,000,000 items are never composed (before: about 10 s)


def test_a_mapping_for_a_job_command_is_refused_at_its_key(tmp_path: Path) -> None:
    path = tmp_path / "j.yaml"
    path.write_text("name: t\nqueue: q\ngpus: 1\ncommand: {a: 1}\n")
    with pytest.raises(JobFileError) as caught:
        load_job_file(path)
    [said] = [str(p) for p in caught.value.problems]
    assert said.startswith(f"{path}:4:10: command: found a mapping; expected a single value")


def test_a_document_of_millions_of_values_is_refused_at_the_node_cap(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("name: x\nclusters: [" + ",".join(["1"] * (MAX_NODES + 10)) + "]\n")
    elapsed, [said] = _timed_problems(path)
    assert f"found more than {MAX_NODES:,} nodes" in said
    assert MAX_NODES == 500_000 and elapsed < 20.0  # before: a 4,000,000-node cap


def test_a_fleet_holds_at_most_10000_clusters() -> None:
    base = Fleet.model_validate({"name": "x"})
    cluster = {"id": "c", "site": "s", "gpu_model": "H100-SXM", "gpus_per_node": 8, "nodes": 1}
    cluster["price_per_gpu_hour_usd"] = "1"
    data = {**base.model_dump(mode="json", exclude_defaults=True), "clusters": [cluster] * (MAX_ENTITIES + 1)}
    with pytest.raises(ValidationError) as caught:
        Fleet.model_validate(data)
    assert MAX_ENTITIES == 10_000
    assert [e["loc"] for e in caught.value.errors()] == [("clusters",)]

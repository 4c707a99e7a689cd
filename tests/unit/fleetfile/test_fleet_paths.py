"""A fleet path or a job file that is not a regular file is refused at once, located: a dangling ``*.yaml`` symbolic
link in a fleet directory (it was silently skipped), a FIFO or a device (reading a FIFO waited for ever). And a fleet
plan's field errors are worded as the loader words them, ``body.fleet.clusters[0].nodes: found X, expected Y``."""

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from stargate.cli.jobfile import JobFileError, load_job_file
from stargate.fleetfile import FleetFileError, load_fleet
from stargate.server.errors import InvalidError
from stargate.server.services.fleet import parse

SMALL = Path("tests/e2e/fleets/small.yaml").read_text()


def _within_5_s(path: Path, load: Callable[[], None]) -> None:
    """Run ``load`` in a thread that must finish within 5 s (opening a FIFO used to wait for a writer for ever)."""
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(5.0)
    if worker.is_alive():  # unblock the reader so the thread ends, then fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"loading {path} did not return")


def _problems(path: Path) -> list[str]:
    """The problems of loading the fleet at ``path``."""
    out: list[str] = []

    def load() -> None:
        try:
            load_fleet(path)
        except FleetFileError as exc:
            out.extend(str(p) for p in exc.problems)

    _within_5_s(path, load)
    return out


def test_a_dangling_yaml_symlink_in_a_fleet_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "10-fleet.yaml").write_text(SMALL)
    (tmp_path / "20-more.yaml").symlink_to(tmp_path / "gone.yaml")
    assert _problems(tmp_path) == [
        f"{tmp_path}/20-more.yaml:0:0: (document): found a symbolic link to a missing file; "
        "expected a regular YAML file"
    ]


def test_a_dangling_symlink_given_as_the_fleet_is_named_as_one(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").symlink_to(tmp_path / "gone.yaml")
    [said] = _problems(tmp_path / "f.yaml")
    assert "found a symbolic link to a missing file" in said


def test_a_fifo_as_the_fleet_path_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    [said] = _problems(fifo)
    assert said.startswith(f"{fifo}:0:0: (document): found a named pipe (FIFO); expected a fleet YAML file")


def test_a_fifo_inside_a_fleet_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "10-fleet.yaml").write_text(SMALL)
    os.mkfifo(tmp_path / "20-pipe.yaml")
    assert ["found a named pipe (FIFO)" in p for p in _problems(tmp_path)] == [True]


def test_a_device_as_the_fleet_path_is_refused() -> None:
    [said] = _problems(Path("/dev/null"))
    assert "found a character device" in said


def test_a_fifo_as_a_job_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "j.yaml"
    os.mkfifo(fifo)
    found: list[str] = []

    def load() -> None:
        try:
            load_job_file(fifo)
        except JobFileError as exc:
            found.extend(p.found for p in exc.problems)

    _within_5_s(fifo, load)
    assert found == ["a named pipe (FIFO)"]


def test_a_plan_field_error_reads_like_the_loaders() -> None:
    cluster = {"id": "c", "site": "s", "gpu_model": "H100-SXM", "gpus_per_node": 8, "nodes": -1}
    with pytest.raises(InvalidError) as caught:
        parse({"name": "x", "clusters": [{**cluster, "price_per_gpu_hour_usd": "1"}]})
    assert str(caught.value) == (
        "invalid fleet: body.fleet.clusters[0].nodes: found -1, expected an integer greater than 0 and at most "
        "10,000,000 (nodes)"
    )

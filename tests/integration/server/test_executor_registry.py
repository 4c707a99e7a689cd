"""The server's executors: one per executor id, built from the fleet in force's settings of that id (else a
default), built again when those settings change, and a clear error for an id nobody declared."""

from pathlib import Path
from typing import Any

import pytest

from stargate import executors
from stargate.domain import DEFAULT_EXECUTORS, ExecutorHealth, SlurmExecutorConfig
from stargate.executors import Capabilities, ExecutorBuildError, LocalExecutor, UnknownExecutorError
from stargate.server import context
from stargate.server.context import ExecutorRegistry, FleetCache
from stargate.server.settings import Settings


class FakeSlurm:
    """Stands in for the Slurm executor: records the settings it was built from."""

    CAPABILITIES = Capabilities(multinode=True)
    kind = "slurm"

    def __init__(self, config: SlurmExecutorConfig) -> None:
        self.config = config
        self.capabilities = self.CAPABILITIES

    @classmethod
    def from_config(cls, config: SlurmExecutorConfig, settings: Any) -> "FakeSlurm":
        if config.partition == "refused":
            raise ValueError("partition 'refused' does not exist")
        return cls(config)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ExecutorRegistry:
    monkeypatch.setitem(executors._MODULES, "slurm", (__name__, "FakeSlurm"))
    return ExecutorRegistry(Settings(home=tmp_path, database_url="sqlite://", isolation="none", single_team="a"))


def test_the_default_ids_need_no_declaration(registry: ExecutorRegistry) -> None:
    local = registry.get("local")
    assert isinstance(local, LocalExecutor) and registry.get("local", {}) is local
    slurm = registry.get("slurm")
    assert isinstance(slurm, FakeSlurm) and slurm.config is DEFAULT_EXECUTORS["slurm"]


def test_a_declared_executor_is_built_from_its_settings_and_again_when_they_change(registry: ExecutorRegistry) -> None:
    east = SlurmExecutorConfig(id="east", kind="slurm", partition="gpu")
    first = registry.get("east", {"east": east})
    assert isinstance(first, FakeSlurm) and first.config.partition == "gpu"
    assert registry.get("east", {"east": east.model_copy()}) is first  # equal settings: the same executor
    slower = east.model_copy(update={"health": ExecutorHealth(interval_s=60)})
    assert registry.get("east", {"east": slower}) is first  # health settings only tell the server when to check
    moved = registry.get("east", {"east": east.model_copy(update={"partition": "big"})})
    assert moved is not first and isinstance(moved, FakeSlurm) and moved.config.partition == "big"
    assert registry.get("east", {}) is moved  # gone from the fleet: its runs still reach it


def test_an_unknown_id_and_settings_the_engine_refuses_are_clear_errors(registry: ExecutorRegistry) -> None:
    with pytest.raises(UnknownExecutorError, match=r"^unknown executor 'west' \(the fleet in force has: east, "):
        registry.get("west", {"east": SlurmExecutorConfig(id="east", kind="slurm")})
    refused = SlurmExecutorConfig(id="east", kind="slurm", partition="refused")
    with pytest.raises(UnknownExecutorError, match=r"^executor 'east' \(slurm\): partition 'refused' does not exist$"):
        registry.get("east", {"east": refused})


def test_an_executor_that_cannot_be_built_is_logged_once_and_tried_again_later(
    registry: ExecutorRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def broken(cls: type, config: SlurmExecutorConfig, settings: Any) -> FakeSlurm:
        calls.append(config.id)
        raise RuntimeError("sbatch is not on PATH")  # any exception, not only ValueError/OSError

    monkeypatch.setattr(FakeSlurm, "from_config", classmethod(broken))
    east = SlurmExecutorConfig(id="east", kind="slurm")
    for _ in range(3):
        with pytest.raises(ExecutorBuildError, match=r"^executor 'east' \(slurm\): sbatch is not on PATH$"):
            registry.get("east", {"east": east})
    assert calls == ["east"]  # the same settings are not tried again before RETRY_BUILD_S
    assert [r.levelname for r in caplog.records if "sbatch" in r.getMessage()] == ["WARNING"]
    monkeypatch.setattr(context, "RETRY_BUILD_S", 0.0)
    with pytest.raises(UnknownExecutorError):
        registry.get("east", {"east": east.model_copy(update={"partition": "gpu"})})  # new settings: tried at once
    assert calls == ["east", "east"]
    monkeypatch.setattr(FakeSlurm, "from_config", classmethod(lambda cls, config, settings: cls(config)))
    assert isinstance(registry.get("east", {"east": east}), FakeSlurm)  # mended: built, the failure forgotten
    assert [r.levelname for r in caplog.records if "sbatch" in r.getMessage()] == ["WARNING"]


def test_executors_given_at_construction_are_kept_whatever_the_fleet_says(tmp_path: Path) -> None:
    given = LocalExecutor(tmp_path / "runs")
    registry = ExecutorRegistry(Settings(home=tmp_path, database_url="sqlite://"), {"local": given})
    assert registry.get("local", {"local": SlurmExecutorConfig(id="local", kind="slurm")}) is given


def test_before_any_fleet_only_the_defaults_are_known() -> None:
    assert FleetCache().executor_configs() is DEFAULT_EXECUTORS

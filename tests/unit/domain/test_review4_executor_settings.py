"""Fourth review of the stricter executor settings of the fleet file (docs/reference/fleet-file.md, executors):
values just inside and just outside each new rule."""

from typing import Any

import pytest
from pydantic import ValidationError

from stargate.domain.executors import KubernetesExecutorConfig, SlurmExecutorConfig


def _slurm(**kw: Any) -> SlurmExecutorConfig:
    return SlurmExecutorConfig.model_validate({"id": "slurm-a", "kind": "slurm", "work_dir": "/srv/sg", **kw})


def _k8s(**kw: Any) -> KubernetesExecutorConfig:
    return KubernetesExecutorConfig.model_validate({"id": "k8s-a", "kind": "kubernetes", "namespace": "sg", **kw})


@pytest.mark.parametrize(
    "settings",
    [
        {"gres": "gpu"},
        {"gres": "gpu:a100"},
        {"gres": "gpu:a100_80g"},
        {"slurm_conf": "/etc/slurm/slurm.conf"},
        {"slurm_conf": "/etc/slurm/..conf"},  # '..' inside a name is not a '..' part
        {"bin_dir": "/opt/slurm/bin/"},
        {"user": "sg-alpha"},
        {"user": "_svc"},
        {"user": "a" * 32},
        {"team_users": {"alpha": "sg.alpha"}},
        {"team_users": {"alpha": "root"}},  # as explicit as user: root
    ],
)
def test_slurm_settings_just_inside_the_rules_are_taken(settings: dict[str, Any]) -> None:
    _slurm(**settings)


@pytest.mark.parametrize(
    "settings",
    [
        {"gres": "gpu:8"},
        {"gres": "gpu:a100:8"},
        {"gres": "gpu:"},
        {"slurm_conf": "etc/slurm.conf"},
        {"slurm_conf": "/etc/../slurm.conf"},
        {"slurm_conf": "/etc/slurm/.."},
        {"bin_dir": "./bin"},
        {"work_dir": "/srv/sg/../other"},
        {"user": "1000"},
        {"user": "-alpha"},
        {"user": "a" * 33},
        {"user": "alpha beta"},
        {"team_users": {"alpha": "1000"}},
        {"team_users": {"Alpha": "sg-alpha"}},
    ],
)
def test_slurm_settings_just_outside_the_rules_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _slurm(**settings)


def test_an_account_name_is_matched_whole_in_user_and_team_users_alike() -> None:
    """user is stripped of surrounding whitespace by the model; a team_users account is checked as given, and a
    final newline no longer passes the pattern's '$' (it did, while a leading space was refused)."""
    assert _slurm(user="sg-alpha\n").user == "sg-alpha"
    for account in ("sg-alpha\n", " sg-alpha"):
        with pytest.raises(ValidationError, match=r"team_users\.alpha"):
            _slurm(team_users={"alpha": account})


@pytest.mark.parametrize(
    ("settings", "ok"),
    [
        ({"namespace": "a" * 63}, True),
        ({"namespace": "a" * 64}, False),
        ({"namespace": "a-"}, False),
        ({"namespace": "A"}, False),
        ({"namespace": "s\ng"}, False),
        ({"queue": "team.queue-1"}, True),
        ({"queue": "a" * 253}, True),
        ({"queue": "a" * 254}, False),
        ({"queue": "-q"}, False),
        ({"token_env": "K8S_TOKEN"}, True),
        ({"token_env": "STARGATE_ADMIN_TOKEN"}, False),
        ({"token_env": "STARGATE_"}, False),
        ({"kubeconfig": "/home/sg/.kube/config"}, True),
        ({"kubeconfig": "~/.kube/config"}, False),
        ({"ca_file": "/etc/ssl/../ca.pem"}, False),
    ],
)
def test_kubernetes_settings_at_the_edges(settings: dict[str, Any], ok: bool) -> None:
    if ok:
        _k8s(**settings)
        return
    with pytest.raises(ValidationError):
        _k8s(**settings)

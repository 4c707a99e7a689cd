"""Which account a Slurm job runs as, for a server of a given uid, against this host's real accounts (root, nobody):
a root server needs ``user``, an account must exist here, only root submits as another account, and runs of other
accounts need a ``log_dir`` they can reach and nobody else can write."""

import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors.slurm_accounts import Account, AccountError, JobAccounts, own_log_file, shared_log_dir

NOBODY = pwd.getpwnam("nobody")


def config(**given: object) -> SlurmExecutorConfig:
    return SlurmExecutorConfig(id="slurm-east", kind="slurm", **given)  # type: ignore[arg-type]


def test_a_root_server_needs_a_user() -> None:
    with pytest.raises(AccountError) as info:
        JobAccounts.of(config(), euid=0)
    assert str(info.value) == (
        "the server runs as root and executors[slurm-east].user is not set: set user to the Unix account its Slurm "
        "jobs run as (one that slurmctld and every node know, e.g. user: stargate-jobs), and team_users for an "
        "account per team; Slurm jobs never run as root unless user says root"
    )
    with pytest.raises(AccountError, match=r"executors\[slurm-east\]\.user is not set"):
        JobAccounts.of(config(team_users={"alpha": "nobody"}), euid=0)  # team_users alone: other teams would be root


def test_an_account_this_host_does_not_have_is_named() -> None:
    with pytest.raises(AccountError) as info:
        JobAccounts.of(config(user="nobody", team_users={"beta": "sg-no-such-account"}), euid=0)
    assert str(info.value).startswith(
        "account 'sg-no-such-account' (executors[slurm-east].team_users.beta) does not exist on this host: create it"
    )


def test_a_root_server_runs_each_team_as_its_account() -> None:
    accounts = JobAccounts.of(config(user="nobody", team_users={"ops": "root"}), euid=0)
    assert accounts.for_team("alpha") == Account("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert accounts.for_team("ops") is None  # root: the server's own account, no --uid
    assert accounts.names_others


def test_user_root_names_no_other_account(caplog: pytest.LogCaptureFixture) -> None:
    accounts = JobAccounts.of(config(user="root"), euid=0)
    assert accounts.for_team("alpha") is None and not accounts.names_others
    assert "executor slurm-east: Slurm jobs run as root (root)" in caplog.text


def test_a_server_not_running_as_root_names_only_its_own_account() -> None:
    own = JobAccounts.of(config(user="nobody"), euid=NOBODY.pw_uid)
    assert own.for_team("alpha") is None and not own.names_others
    assert JobAccounts.of(config(), euid=NOBODY.pw_uid).for_team("alpha") is None
    with pytest.raises(AccountError) as info:
        JobAccounts.of(config(user="nobody", team_users={"ops": "root"}), euid=NOBODY.pw_uid)
    assert str(info.value) == (
        "executors[slurm-east].team_users.ops names 'root', but the server runs as 'nobody' "
        f"(uid {NOBODY.pw_uid}) and only root can submit Slurm jobs as another account (sbatch --uid): start the "
        "server as root, or leave user and team_users out (jobs then run as 'nobody' "
        f"(uid {NOBODY.pw_uid}))"
    )


@pytest.fixture
def passable() -> Iterator[Path]:
    """A directory every user may pass (0711), outside pytest's private temporary directories."""
    path = Path(tempfile.mkdtemp(prefix="sg-accounts-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def test_runs_of_other_accounts_need_a_log_dir_they_can_reach(passable: Path, tmp_path: Path) -> None:
    server = JobAccounts(executor="slurm-east", user="nobody", euid=os.geteuid())
    with pytest.raises(AccountError, match=r"set executors\[slurm-east\]\.log_dir to a directory outside"):
        shared_log_dir(config(), server)
    private = tmp_path / "logs"  # under pytest's 0700 directory
    with pytest.raises(AccountError, match=r"cannot reach it, since others may not pass /.* \(mode 700\)"):
        shared_log_dir(config(log_dir=str(private)), server)
    made = shared_log_dir(config(log_dir=str(passable / "a" / "logs")), server)
    assert stat.S_IMODE(made.stat().st_mode) == 0o711 and made.stat().st_uid == os.geteuid()
    open_to_all = passable / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o1777)
    with pytest.raises(AccountError, match="mode 1777: it must be owned by the server's user"):
        shared_log_dir(config(log_dir=str(open_to_all)), server)


def test_a_runs_log_file_is_its_accounts_alone(passable: Path) -> None:
    me = pwd.getpwuid(os.geteuid())
    log = passable / "run.log"
    own_log_file(log, Account(me.pw_name, me.pw_uid, me.pw_gid))
    info = log.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode), info.st_size) == (me.pw_uid, 0o600, 0)
    (passable / "elsewhere").symlink_to(log)
    with pytest.raises(OSError):
        own_log_file(passable / "elsewhere", Account(me.pw_name, me.pw_uid, me.pw_gid))  # never through a link

"""The Slurm executor's run-name locks across processes: a lock stays held while the sbatch given it lives, even
after the process that took it was killed, never longer than that sbatch's timeout; a server started in its place
then finds the job that sbatch made instead of submitting a second one, and never withdraws it.

The lock tests use a stand-in sbatch (a shell script: no Slurm needed); the last test uses a real one-node Slurm.
"""

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engines.slurm_cluster import SlurmCluster, slurm_fixture
from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors.base import RunRequest
from stargate.executors.slurm import SlurmExecutor
from stargate.executors.slurm_commands import SlurmCommands, SlurmUnavailableError
from stargate.executors.slurm_locks import STRIPES, RunLocks

slurm = slurm_fixture(gpus_per_node=8)
NAME = "sg-0123abcd-j-000001-a0"

HOLDER = """
import sys
from pathlib import Path
from stargate.executors.slurm_commands import SlurmCommands
from stargate.executors.slurm_locks import RunLocks
locks = RunLocks(Path(sys.argv[1]), 30, "test")
with locks.hold(sys.argv[2]) as fd:
    SlurmCommands(bin_dir=sys.argv[3], timeout_s=float(sys.argv[4])).run("sbatch", [], hold=fd)
"""


def _stand_in(tmp_path: Path, sleep_s: float) -> tuple[Path, Path, Path]:
    """A bin_dir whose sbatch touches ``started``, sleeps ``sleep_s`` and touches ``ended``."""
    bin_dir, started, ended = tmp_path / "bin", tmp_path / "started", tmp_path / "ended"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\ntouch {started}\nsleep {sleep_s}\ntouch {ended}\necho 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    return bin_dir, started, ended


def _kill_a_holder_in_sbatch(tmp_path: Path, locks_dir: Path, sleep_s: float, timeout_s: float) -> Path:
    """Start a process that takes NAME's lock and runs the stand-in sbatch under it; SIGKILL it once that sbatch
    started. Returns the file the sbatch touches when it ends."""
    bin_dir, started, ended = _stand_in(tmp_path, sleep_s)
    argv = [sys.executable, "-c", HOLDER, str(locks_dir), NAME, str(bin_dir), str(timeout_s)]
    holder = subprocess.Popen(argv)
    deadline = time.monotonic() + 20
    while not started.exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the stand-in sbatch never started"
        time.sleep(0.01)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    return ended


def test_a_killed_holders_sbatch_keeps_the_lock_until_it_ends(tmp_path: Path) -> None:
    ended = _kill_a_holder_in_sbatch(tmp_path, tmp_path / "locks", sleep_s=2, timeout_s=10)
    begun = time.monotonic()
    with RunLocks(tmp_path / "locks", 10, "test").hold(NAME):
        waited = time.monotonic() - begun
        assert ended.exists(), f"the lock was free after {waited:.2f} s while the sbatch still ran"
    assert 0.5 < waited < 8, waited


def test_a_killed_holders_sbatch_is_ended_at_its_timeout_and_frees_the_lock(tmp_path: Path) -> None:
    ended = _kill_a_holder_in_sbatch(tmp_path, tmp_path / "locks", sleep_s=60, timeout_s=2)
    begun = time.monotonic()
    with RunLocks(tmp_path / "locks", 10, "test").hold(NAME):
        waited = time.monotonic() - begun
    assert waited < 4, waited
    time.sleep(0.2)
    assert not ended.exists()
    leftovers = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True, check=False).stdout
    mine = [p for p in leftovers.split() if (tmp_path / "bin").as_posix() in _parent_cmdline(int(p))]
    assert not mine, mine  # timeout ended the sbatch's whole process group, its sleep too


def _parent_cmdline(pid: int) -> str:
    try:
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        return Path(f"/proc/{parent}/cmdline").read_text()
    except (OSError, IndexError):
        return ""


def test_a_wait_for_a_lock_is_bounded_and_names_the_lock(tmp_path: Path) -> None:
    _kill_a_holder_in_sbatch(tmp_path, tmp_path / "locks", sleep_s=5, timeout_s=10)
    locks = RunLocks(tmp_path / "locks", 0.5, "slurm (x)")
    begun = time.monotonic()
    with pytest.raises(SlurmUnavailableError, match=rf"{NAME} waited 0.5 s for lock locks/\d\d, still held"):
        locks.hold(NAME).__enter__()
    assert 0.4 < time.monotonic() - begun < 2


def test_a_sbatch_under_a_lock_that_times_out_or_is_missing_is_unavailable(tmp_path: Path) -> None:
    bin_dir, _, _ = _stand_in(tmp_path, sleep_s=30)
    with RunLocks(tmp_path / "locks", 5, "test").hold(NAME) as fd:
        begun = time.monotonic()
        with pytest.raises(SlurmUnavailableError, match="sbatch did not answer in 1 s"):
            SlurmCommands(bin_dir=str(bin_dir), timeout_s=1).run("sbatch", [], hold=fd)
        assert time.monotonic() - begun < 3
        with pytest.raises(SlurmUnavailableError, match="sbatch not found in /nowhere"):
            SlurmCommands(bin_dir="/nowhere").run("sbatch", [], hold=fd)


def test_lock_files_are_few_and_the_servers_alone(tmp_path: Path) -> None:
    locks = RunLocks(tmp_path / "runs" / "locks", 1, "test")
    for n in range(500):
        with locks.hold(f"sg-0123abcd-j-{n:06d}-a0"):
            pass
    files = list(locks.dir.iterdir())
    assert len(locks) == STRIPES and 0 < len(files) <= STRIPES, len(files)
    assert stat.S_IMODE(locks.dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    assert {f.stat().st_uid for f in files} == {os.geteuid()}


SUBMITTER = """
import sys
from pathlib import Path
from stargate.domain.executors import SlurmExecutorConfig
from stargate.executors.base import RunRequest
from stargate.executors.slurm import SlurmExecutor
conf = SlurmExecutorConfig.model_validate_json(sys.argv[1])
executor = SlurmExecutor(conf, Path(sys.argv[2]), sys.argv[3])
executor.submit(RunRequest(job_id="j-000001", attempt=0, command="true", cluster="slurm-a", gpu_ids=()))
"""


@pytest.mark.slow
def test_a_server_started_while_a_killed_servers_sbatch_runs_finds_its_job(slurm: SlurmCluster, tmp_path: Path) -> None:
    """A process submits through a slow sbatch (2 s before the real one) and is killed in it; a fresh executor on
    the same state directory neither withdraws that attempt (find) nor submits it again: one Slurm job."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("squeue", "scontrol", "scancel", "sinfo", "sacct"):
        if real := shutil.which(name):
            (bin_dir / name).symlink_to(real)
    started = tmp_path / "in-sbatch"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ntouch {started}\nsleep 2\nexec {shutil.which("sbatch")} "$@"\n')
    (bin_dir / "sbatch").chmod(0o755)
    more = {"user": "root"} if os.geteuid() == 0 else {}  # a root server runs them as root only when told to
    conf = SlurmExecutorConfig(
        id="slurm-l", kind="slurm", slurm_conf=str(slurm.slurm_conf), bin_dir=str(bin_dir), **more
    )
    installation, home = uuid.uuid4().hex, tmp_path / "home"
    first = subprocess.Popen([sys.executable, "-c", SUBMITTER, conf.model_dump_json(), str(home), installation])
    deadline = time.monotonic() + 20
    while not started.exists():
        assert first.poll() is None and time.monotonic() < deadline, "the first submit never reached sbatch"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    again = SlurmExecutor(conf, home, installation)
    found = again.find("j-000001", 0)
    assert found is not None  # not withdrawn: it waited for the killed process's sbatch
    request = RunRequest(job_id="j-000001", attempt=0, command="true", cluster="slurm-a", gpu_ids=())
    assert again.submit(request) == found
    name = found.key.split(":")[1]
    listed = slurm.command("squeue", "--name", name, "--states=all", "-h", "-o", "%i").stdout.split()
    assert listed == [found.key.split(":")[0]]

"""A real single-host Slurm cluster for tests: munged, slurmctld and slurmd from the OS packages, all in a tmp dir.

:func:`start_slurm` writes a munge key, a ``slurm.conf`` and a ``gres.conf`` under ``tmp_path``, starts munged,
slurmctld and slurmd in the foreground as children of the test process (free ports; every state, log, pid and socket
file in ``tmp_path``) and waits until ``sinfo`` reports the node idle (about 1 s). Only the slurmd spool
directory is elsewhere: :attr:`SlurmCluster.public_dir`, a fresh directory of its own (removed by
:meth:`SlurmCluster.stop`), so several clusters (one per test module) never meet.

- Job accounts: jobs of a root server run as real accounts (``sbatch --uid``). :func:`ensure_test_accounts` makes
  :data:`TEST_ACCOUNTS` (``useradd -r -M -U``, no home, no login shell) when they are missing, as root; it is
  idempotent and safe when several test processes call it at once. Those accounts cannot pass pytest's private
  temporary directories (0700), so the spool (where slurmd puts each job's script) is in :attr:`SlurmCluster.public_dir`
  (0711, outside them), and so must a test executor's ``log_dir`` be (e.g. a directory made in it).

- ``proctrack/linuxproc`` and ``task/none``: no cgroups needed. ``SlurmdParameters=config_overrides``: the node
  declares ``cpus`` CPUs (default: the machine's, at least 16) so several one-CPU jobs run at once on a small machine.
- GPUs: ``GresTypes=gpu`` and ``Gres=gpu:<n>`` on the node. Slurm 22.05 drops a GPU without a ``File=`` (a
  count-only one), so ``gres.conf`` names ``<tmp>/dev/gpu0..n-1``, symlinks to /dev/null (nothing fences them).
- ``AccountingStorageType=accounting_storage/none`` (no slurmdbd), so ``sacct`` does not work; ``MinJobAge=3600``
  keeps a finished job in slurmctld for an hour: its final state and exit code are read with ``scontrol show job``
  (what :class:`stargate.executors.slurm.SlurmExecutor` does first; it falls back on sacct on real clusters).
- :meth:`SlurmCluster.stop_daemons` is a node failure: slurmctld, slurmd, every slurmstepd and every job process
  they started are SIGKILLed (slurmstepd daemonizes out of slurmd's process tree; it is found by a variable set in
  the daemons' environment). :meth:`SlurmCluster.start_daemons` then starts slurmctld, marks the node down (what
  slurmctld itself concludes once the node has not answered for ``SlurmdTimeout``, or when it registers after a
  reboot: its jobs end as ``NODE_FAIL``; this host did not reboot, so Slurm would otherwise keep them "running"),
  starts slurmd and resumes the node.
- ``batch_sched_delay=0`` and a 1 s scheduling interval: a job starts about 2 s after sbatch.

If the Slurm or munge binaries are missing, :func:`start_slurm` fails with a message saying ``.ci/run`` installs them
(packages ``slurm-wlm`` and ``munge``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "sinfo")
START_TIMEOUT_S = 60.0


TEST_ACCOUNTS = ("sg-test-a", "sg-test-b")
"""Unix accounts the tests' Slurm jobs run as (a root server's jobs never run as root): two, for two teams."""
NOLOGIN = "/usr/sbin/nologin"


class SlurmMissingError(RuntimeError):
    """The Slurm or munge programs are not installed on this machine."""


def ensure_test_accounts(names: tuple[str, ...] = TEST_ACCOUNTS) -> tuple[str, ...]:
    """Make each of ``names`` a system account (no home, no login shell, a group of its own) unless it exists;
    only as root (otherwise nothing is made). Several processes may call it at once: a ``useradd`` that loses the
    race, or finds /etc/passwd locked, is checked again and retried. Returns the names that exist afterwards."""
    for name in names:
        for attempt in range(50):
            if _account_exists(name) or os.geteuid() != 0:
                break
            shell = NOLOGIN if Path(NOLOGIN).exists() else "/bin/false"
            useradd = _which("useradd") or "useradd"
            done = subprocess.run(
                [useradd, "-r", "-M", "-U", "-d", "/nonexistent", "-s", shell, "-c", "Stargate test jobs", name],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if done.returncode == 0 or _account_exists(name):
                break
            if attempt == 49:
                raise RuntimeError(f"useradd {name} failed: {done.stderr.strip() or done.returncode}")
            time.sleep(0.1)  # another process holds the passwd lock, or is making the same account
    return tuple(name for name in names if _account_exists(name))


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on this host right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _which(name: str) -> str | None:
    """Where ``name`` is: PATH, then the sbin directories (Debian puts the daemons in /usr/sbin)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


MARKER = "STARGATE_TEST_SLURM"
"""Variable set in the daemons' environment (to this cluster's directory): slurmstepd inherits it even though it
leaves slurmd's process tree (it daemonizes), so :meth:`SlurmCluster.stop_daemons` finds it by that."""


def _processes() -> dict[int, int]:
    """Every live process's parent, by pid (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    return parents


def _marked(marker: bytes, pids: Iterable[int]) -> set[int]:
    """The processes among ``pids`` whose environment holds ``marker``."""
    found = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.add(pid)
    return found


def _tree(roots: set[int], parents: dict[int, int]) -> set[int]:
    """``roots`` and every live descendant of theirs."""
    found = set(roots)
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier and pid not in found}
        found |= frontier
    return found


@dataclass
class SlurmCluster:
    """A running test cluster: its config file, its daemons, and how to fail and restore its node."""

    root: Path
    slurm_conf: Path
    hostname: str
    nodes: int
    gpus_per_node: int
    public_dir: Path = field(default_factory=Path)
    """A directory of this cluster's (0711, the server's user's) outside pytest's private temporary directories, that
    job accounts can pass: the slurmd spool is in it, and a test executor's ``log_dir`` goes in it. Removed by
    :meth:`stop`."""
    bin_dir: str | None = None
    """Directory of the Slurm commands (None: they are on PATH)."""
    munge_socket: Path = field(default_factory=Path)
    _munged: subprocess.Popen[bytes] | None = None
    _daemons: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _failed: bool = False
    daemon_start_s: float = 0.0
    """Seconds the last :meth:`start_daemons` took until the node was idle."""

    @property
    def env(self) -> dict[str, str]:
        """The environment the Slurm commands need to reach this cluster."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_CONF": str(self.slurm_conf)}

    @property
    def daemon_env(self) -> dict[str, str]:
        """The daemons' environment: :attr:`env` and the marker that finds their processes again."""
        return {**self.env, MARKER: str(self.root)}

    def command(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """Run one Slurm command against this cluster (its output captured as text)."""
        return subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=timeout, check=False)

    def start_daemons(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Start slurmctld and slurmd (munged stays up) and wait until the node is idle."""
        if self._daemons:
            return
        started = time.monotonic()
        logs = self.root / "log"
        ctld_out = (logs / "slurmctld.out").open("ab")
        slurmd_out = (logs / "slurmd.out").open("ab")
        with ctld_out, slurmd_out:
            self._daemons.append(
                subprocess.Popen(
                    [_which("slurmctld") or "slurmctld", "-D", "-i", "-f", str(self.slurm_conf)],
                    env=self.daemon_env,
                    stdin=subprocess.DEVNULL,
                    stdout=ctld_out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            if self._failed:
                self._wait_controller(timeout_s)
                why = "reason=node failure (test): slurmd and its jobs were killed"
                self.command("scontrol", "update", f"nodename={self.hostname}", "state=down", why)
            self._daemons.append(
                subprocess.Popen(
                    [_which("slurmd") or "slurmd", "-D", "-f", str(self.slurm_conf)],
                    env=self.daemon_env,
                    stdin=subprocess.DEVNULL,
                    stdout=slurmd_out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        self._wait_idle(timeout_s)
        self._failed = False
        self.daemon_start_s = time.monotonic() - started

    def _wait_controller(self, timeout_s: float) -> None:
        """Wait until slurmctld answers ``scontrol ping``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if " is UP" in self.command("scontrol", "ping", timeout=5).stdout:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"slurmctld did not answer in {timeout_s:.0f} s: {self._log_tails()}")

    def _wait_idle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            for proc in self._daemons:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Slurm daemon exited with code {proc.returncode}: {self._log_tails()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                done = self.command("sinfo", "-h", "-o", "%n %T", timeout=5)
                last = (done.stdout + done.stderr).strip()
                states = [line.split()[-1] for line in done.stdout.splitlines() if line.strip()]
                if done.returncode == 0 and states and all(s in {"idle", "mixed", "allocated"} for s in states):
                    return
                if done.returncode == 0 and any(s.startswith(("down", "drain")) for s in states):
                    self.command("scontrol", "update", f"nodename={self.hostname}", "state=resume")
            time.sleep(0.2)
        raise RuntimeError(f"Slurm node not idle after {timeout_s:.0f} s (sinfo: {last!r}): {self._log_tails()}")

    def _log_tails(self) -> str:
        parts = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.out", "slurmd.out"):
            path = self.root / "log" / name
            if path.exists():
                parts.append(f"{name}: {' | '.join(path.read_text(errors='replace').splitlines()[-5:])}")
        return "; ".join(parts)

    def stop_daemons(self) -> None:
        """A node failure: SIGKILL slurmctld, slurmd and every process they started (slurmstepd and the jobs), so no
        job survives. munged stays up."""
        marker = f"{MARKER}={self.root}".encode()
        killed: set[int] = set()
        for _ in range(50):  # stop them first so they start nothing new while their trees are collected
            parents = _processes()
            ours = {p.pid for p in self._daemons if p.poll() is None} | _marked(marker, parents)
            tree = _tree(ours, parents) - killed
            if not tree:
                break
            for pid in tree:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            killed |= tree
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self._daemons:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self._daemons.clear()
        self._failed = True

    def kill_controller(self) -> None:
        """SIGKILL slurmctld alone: slurmd and the job steps keep running (a controller-only outage)."""
        marker = f"{MARKER}={self.root}".encode()
        for pid in _marked(marker, _processes()):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "slurmctld":
                    os.kill(pid, signal.SIGKILL)
        for proc in list(self._daemons):
            if str(proc.args[0]).endswith("slurmctld"):  # type: ignore[index]
                proc.wait(timeout=10)
                self._daemons.remove(proc)

    def start_controller(self) -> None:
        """Start slurmctld again over its saved state and wait until it answers (stopped with the cluster)."""
        with (self.root / "log" / "slurmctld.out").open("ab") as out:
            proc = subprocess.Popen(
                [_which("slurmctld") or "slurmctld", "-D", "-i", "-f", str(self.slurm_conf)],
                env=self.daemon_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._daemons.insert(0, proc)
        self._wait_controller(30)

    def stop(self) -> None:
        """Kill everything this cluster started (daemons, jobs, munged) and remove :attr:`public_dir`."""
        self.stop_daemons()
        if self._munged is not None and self._munged.poll() is None:
            self._munged.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._munged.wait(timeout=10)
        if self.public_dir.name.startswith(PUBLIC_PREFIX):
            shutil.rmtree(self.public_dir, ignore_errors=True)


PUBLIC_PREFIX = "sg-slurm-"


def _slurm_conf(
    root: Path, spool: Path, hostname: str, ports: list[int], cpus: int, gpus_per_node: int, socket_path: Path
) -> str:
    gres = f" Gres=gpu:{gpus_per_node}" if gpus_per_node else ""
    return "\n".join(
        [
            "ClusterName=sgtest",
            f"SlurmctldHost={hostname}",
            f"SlurmctldPort={ports[0]}",
            f"SlurmdPort={ports[1]}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={socket_path}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={spool}",
            f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "GresTypes=gpu",
            "SlurmdParameters=config_overrides",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=3600",
            "SchedulerParameters=batch_sched_delay=0,sched_interval=1,sched_min_interval=100000",
            "SlurmctldTimeout=10",
            "SlurmdTimeout=10",
            "MessageTimeout=3",
            "BatchStartTimeout=10",  # Slurm's default: a launch slower than this is requeued, and may then run twice
            "KillWait=2",
            "InactiveLimit=0",
            "Waittime=0",
            f"NodeName={hostname} CPUs={cpus} RealMemory=1000{gres} State=UNKNOWN",
            f"PartitionName=debug Nodes={hostname} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _gres_conf(root: Path, hostname: str, gpus: int) -> str:
    """``gres.conf`` for ``gpus`` pretend GPUs: Slurm 22.05 drops a GPU without ``File=`` (a count-only GPU), so
    each one is a symlink to /dev/null under ``root/dev`` (a character device; ``task/none`` never fences it)."""
    if not gpus:
        return ""
    (root / "dev").mkdir(exist_ok=True)
    for index in range(gpus):
        link = root / "dev" / f"gpu{index}"
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    return f"NodeName={hostname} Name=gpu Count={gpus} File={root / 'dev'}/gpu[0-{gpus - 1}]\n"


def start_slurm(tmp_path: Path, nodes: int = 1, gpus_per_node: int = 8, cpus: int | None = None) -> SlurmCluster:
    """Start a one-node Slurm cluster with ``gpus_per_node`` count-only GPUs (GRES ``gpu``) and ``cpus`` CPUs
    (default: the machine's, at least 16) under ``tmp_path``; the caller must :meth:`SlurmCluster.stop` it."""
    missing = [name for name in (*BINARIES, "mungekey") if _which(name) is None]
    if missing:
        raise SlurmMissingError(
            f"Slurm and munge are needed for this test but {', '.join(missing)} is missing: .ci/run installs them "
            "(apt-get install slurm-wlm munge)"
        )
    if nodes != 1:
        raise ValueError(f"the test cluster has one node (Debian's Slurm runs one slurmd per host), got {nodes}")
    ensure_test_accounts()
    root = Path(tmp_path)
    for sub in ("munge", "state", "run", "log"):
        (root / sub).mkdir(mode=0o755 if sub == "munge" else 0o700, parents=True, exist_ok=True)
    hostname = socket.gethostname().split(".")[0]
    key = root / "munge" / "munge.key"
    subprocess.run([_which("mungekey") or "mungekey", "--create", f"--keyfile={key}"], check=True, timeout=30)
    key.chmod(0o600)
    public = Path(tempfile.mkdtemp(prefix=PUBLIC_PREFIX))  # from here on, stop() removes it
    public.chmod(0o711)
    (public / "spool").mkdir(mode=0o711)
    socket_path = root / "munge" / "munge.socket"
    conf = root / "slurm.conf"
    cpus = cpus or max(os.cpu_count() or 1, 16)
    conf.write_text(_slurm_conf(root, public / "spool", hostname, _free_ports(2), cpus, gpus_per_node, socket_path))
    (root / "gres.conf").write_text(_gres_conf(root, hostname, gpus_per_node))
    cluster = SlurmCluster(root, conf, hostname, nodes, gpus_per_node, public_dir=public, munge_socket=socket_path)
    munge_log = root / "log" / "munged.log"
    cluster._munged = subprocess.Popen(
        [
            _which("munged") or "munged",
            "--foreground",
            "--force",
            f"--key-file={key}",
            f"--socket={socket_path}",
            f"--pid-file={root / 'run' / 'munged.pid'}",
            f"--log-file={munge_log}",
            f"--seed-file={root / 'munge' / 'munged.seed'}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(root / "log" / "munged.out").open("ab"),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            if cluster._munged.poll() is not None or time.monotonic() > deadline:
                detail = (root / "log" / "munged.out").read_text(errors="replace").strip()
                raise RuntimeError(f"munged did not start: {detail or munge_log.read_text(errors='replace')}")
            time.sleep(0.05)
        cluster.start_daemons()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def slurm_cluster(tmp_path: Path, gpus_per_node: int = 8) -> Iterator[SlurmCluster]:
    """:func:`start_slurm` as a context manager (stopped on exit)."""
    cluster = start_slurm(tmp_path, gpus_per_node=gpus_per_node)
    try:
        yield cluster
    finally:
        cluster.stop()


def slurm_fixture(gpus_per_node: int = 8) -> object:
    """A module-scoped pytest fixture giving a running :class:`SlurmCluster` (``slurm = slurm_fixture()`` in a test
    module; one cluster per module)."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
        with slurm_cluster(tmp_path_factory.mktemp("slurm"), gpus_per_node) as cluster:
            yield cluster

    return fixture

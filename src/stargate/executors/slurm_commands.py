"""Running Slurm's commands (sbatch, squeue, scancel, scontrol, sinfo, sacct) and reading their answers.

Every command runs with a bounded wait, ``SLURM_CONF`` when the executor names a config file, and a small
environment of its own (never the server's: a database URL must not reach Slurm). A command that cannot reach
slurmctld (connection refused or timed out, munge failing, the command missing) raises :class:`SlurmUnavailableError`;
an answer Slurm gave raises nothing here: callers read ``returncode`` and ``stderr``.

A command given a lock to ``hold`` (sbatch: see :mod:`stargate.executors.slurm_locks`) inherits its descriptor and
runs under coreutils' ``timeout -s KILL``: it keeps the lock for as long as it lives, and never lives past its wait,
even when the server that ran it was killed (``timeout`` kills the command's whole process group).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stargate.executors.base import EngineUnreachableError, RunState, RunStatus

COMMAND_TIMEOUT_S = 10.0
"""Longest wait for one Slurm command, seconds."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
BACKSTOP_S = 5.0
"""How much longer than its wait the server waits for ``timeout`` to end a command it runs under it, s."""
KILLED = (124, 137, -9)
"""How a command ``timeout`` ended reads (it ends itself with the command's SIGKILL: -9 here, 137 in a shell)."""

UNREACHABLE = re.compile(
    r"unable to contact slurm controller|socket timed out|connection refused|zero bytes were transmitted|"
    r"communication connection failure|unable to connect|slurm controller not responding|temporarily unable|"
    r"slurm_receive_msg|slurm_send_node_msg|munge|auth_g_|authentication|protocol authentication|"
    r"unable to establish|slurm backup controller in standby|transport endpoint|connection reset|broken pipe|"
    r"timed out|no route to host|network is unreachable|resource temporarily unavailable|"
    r"unable to (?:open|read|process) (?:file|configuration)|s_p_parse_file|could not open|slurm_conf_init",
    re.IGNORECASE,
)
"""Errors that mean Slurm did not answer (or cannot be reached from here), not that it refused the request."""

RUNNING_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "STOPPED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "POWER_UP_NODE",
        "UPDATE_DB",
        "RESV_DEL_HOLD",
    }
)
FAILED_STATES = frozenset({"FAILED", "OUT_OF_MEMORY", "TIMEOUT", "DEADLINE"})
INTERRUPTED_STATES = frozenset(
    {"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "REVOKED"}
)
"""Slurm ended the job for reasons of its own (a node failed or did not boot, Slurm preempted or requeued it)."""
LOST_STATES = frozenset({"SPECIAL_EXIT"})
_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_/:]*)=(\S*)")


class SlurmUnavailableError(EngineUnreachableError):
    """Slurm did not answer (controller down or unreachable, command missing or timed out): try again later."""


@dataclass(frozen=True, slots=True)
class SlurmCommands:
    """How to run the Slurm commands of one cluster."""

    slurm_conf: str | None = None
    """``SLURM_CONF`` for every command; None: the server's own ``SLURM_CONF``, else Slurm's default file."""
    bin_dir: str | None = None
    """Where the commands are; None: on PATH (then /usr/bin and /usr/sbin)."""
    timeout_s: float = COMMAND_TIMEOUT_S

    def describe(self) -> str:
        """How this cluster is named in messages: its config file (or Slurm's default)."""
        return self.slurm_conf or os.environ.get("SLURM_CONF") or "default slurm.conf"

    def environment(self) -> dict[str, str]:
        """The commands' environment: PATH, a UTF-8 locale, HOME and SLURM_CONF; nothing else of the server's."""
        path = os.environ.get("PATH") or DEFAULT_PATH
        env = {"PATH": f"{self.bin_dir}:{path}" if self.bin_dir else path, "LANG": "C.UTF-8"}
        if os.environ.get("HOME"):
            env["HOME"] = os.environ["HOME"]
        conf = self.slurm_conf or os.environ.get("SLURM_CONF")
        if conf:
            env["SLURM_CONF"] = conf
        return env

    def program(self, name: str) -> str:
        """The path (or bare name, found on PATH) of command ``name``."""
        return str(Path(self.bin_dir) / name) if self.bin_dir else name

    def run(
        self,
        name: str,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        timeout_s: float | None = None,
        cwd: Path | None = None,
        hold: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one command; SlurmUnavailableError when it is missing, times out, or says Slurm is unreachable.
        ``hold``: a locked descriptor the command keeps while it lives (it then runs under ``timeout``, when this host
        has it)."""
        if self.slurm_conf and not Path(self.slurm_conf).is_file():
            raise SlurmUnavailableError(f"slurm ({self.describe()}): the Slurm config file does not exist")
        wait = min(timeout_s or self.timeout_s, self.timeout_s)
        env = self.environment()
        argv = [self.program(name), *args]
        bound = _timeout_program() if hold is not None else None
        if bound is not None:
            argv = [bound, "-s", "KILL", f"{wait:g}", *argv]
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                errors="replace",
                env=env,
                timeout=wait + BACKSTOP_S if bound is not None else wait,
                check=False,
                cwd=cwd,
                pass_fds=(hold,) if hold is not None else (),
            )
        except FileNotFoundError as exc:
            raise SlurmUnavailableError(self._missing(name)) from exc
        except subprocess.TimeoutExpired as exc:
            raise SlurmUnavailableError(f"slurm ({self.describe()}): {name} did not answer in {wait:g} s") from exc
        except OSError as exc:
            raise SlurmUnavailableError(f"slurm ({self.describe()}): cannot run {name}: {exc}") from exc
        if bound is not None and done.returncode in KILLED:
            raise SlurmUnavailableError(f"slurm ({self.describe()}): {name} did not answer in {wait:g} s")
        if bound is not None and done.returncode in (126, 127) and "failed to run command" in done.stderr:
            if done.returncode == 127:
                raise SlurmUnavailableError(self._missing(name))
            why = first_line(done.stderr).rpartition(": ")[2]
            raise SlurmUnavailableError(f"slurm ({self.describe()}): cannot run {name}: {why}")
        if done.returncode != 0 and UNREACHABLE.search(done.stderr + done.stdout):
            raise SlurmUnavailableError(f"slurm ({self.describe()}): {name}: {first_line(done.stderr or done.stdout)}")
        return done

    def _missing(self, name: str) -> str:
        where = f"in {self.bin_dir}" if self.bin_dir else "on PATH"
        return f"slurm ({self.describe()}): {name} not found {where}"


@functools.cache
def _timeout_program() -> str | None:
    """coreutils' ``timeout`` in the system's directories (never a ``bin_dir``'s); None when this host has none."""
    return shutil.which("timeout", path=DEFAULT_PATH)


def first_line(text: str) -> str:
    """The first non-empty line of ``text`` (what a Slurm command's error says), at most 300 characters."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return "no output"


def parse_fields(line: str) -> dict[str, str]:
    """The ``Key=value`` fields of one ``scontrol show -o`` line (values without spaces; enough for state fields)."""
    return {m.group(1): m.group(2) for m in _FIELD.finditer(line)}


def exit_code_of(text: str) -> int | None:
    """The exit code of Slurm's ``code:signal`` pair: the code, else 128 + the signal; None when unreadable."""
    code, _, sig = text.partition(":")
    if not code.isdigit():
        return None
    if int(code) == 0 and sig.isdigit() and int(sig) > 0:
        return 128 + int(sig)
    return int(code)


def status_of(state: str, exit_code: str, reason: str, job: str) -> RunStatus:
    """A run's status from Slurm's job state, ``code:signal`` exit code and reason; ``job`` names it in reasons."""
    base = state.split()[0].upper().rstrip("+") if state.strip() else "UNKNOWN"
    code = exit_code_of(exit_code)
    why = "" if reason in {"", "None", "(null)"} else reason
    if base in RUNNING_STATES:
        return RunStatus(RunState.RUNNING)
    if base == "COMPLETED":
        return RunStatus(RunState.SUCCEEDED, exit_code=code if code is not None else 0)
    if base in FAILED_STATES:
        detail = base.lower() if not why or why == "NonZeroExitCode" else f"{base.lower()} ({why})"
        return RunStatus(RunState.FAILED, exit_code=code, reason=f"Slurm job {job}: {detail}")
    if base == "CANCELLED":
        return RunStatus(RunState.CANCELLED, exit_code=code, reason=f"Slurm job {job} cancelled")
    more = f" ({why})" if why else ""
    if base in INTERRUPTED_STATES:
        return RunStatus(RunState.INTERRUPTED, exit_code=code, reason=f"Slurm job {job}: {base.lower()}{more}")
    if base in LOST_STATES:
        return RunStatus(RunState.LOST, exit_code=code, reason=f"Slurm job {job}: {base.lower()}{more}")
    return RunStatus(RunState.LOST, reason=f"Slurm job {job} in unknown state {state!r}")


NODE_FAILED = ("down", "drain", "fail", "inval", "unk", "not_responding", "no_respond", "maint", "power_down")


def node_failed(state: str) -> bool:
    """True for a ``sinfo %T`` node state that cannot run work (down, drained, failed, not responding…)."""
    text = state.lower()
    return text.endswith(("*", "~", "#", "!", "%")) or text.startswith(NODE_FAILED)


def worst_states(lines: Sequence[str]) -> Mapping[str, str]:
    """Each node's state from ``sinfo -N -h -o '%N %T'`` lines (a node in several partitions: its failed state)."""
    states: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            continue
        if parts[0] not in states or node_failed(parts[1]):
            states[parts[0]] = parts[1]
    return states

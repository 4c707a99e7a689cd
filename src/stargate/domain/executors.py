"""How Stargate reaches the engine that runs a cluster's jobs: the fleet file's ``executors:`` section.

An executor is named by an id; a provider (and, to override it, a cluster) names the executor its jobs run on. The
four kind names (``local``, ``ray``, ``slurm``, ``kubernetes``) are executors too, with the defaults below, unless
the fleet declares an executor of that id. Secrets never appear here: a credential is named by the environment
variable of the server's process that holds it (``token_env``).
"""

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails

from stargate.domain.base import Model, Seconds, visible
from stargate.domain.ids import ID_PATTERN, Id
from stargate.domain.limits import MAX_SMALL_LIST

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
"""The name of an environment variable, as conventionally written: upper-case letters, digits and '_', not starting
with a digit, at most 128 characters (a token pasted by mistake, hex or ``ghp_...``, is not one)."""

_PORT = r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
HttpAddress = Annotated[
    str,
    StringConstraints(
        pattern=r"^https?://(?:\[[0-9A-Fa-f:.]{2,45}\]|[^\s/?#@:\[\]]{1,253})" + _PORT + r"(/[^\s?#]{0,1000})?$"
    ),
]
"""An http:// or https:// address with a host (a name, an IPv4 address or a bracketed IPv6 one) and a port from 1 to
65535, optionally a path; no query, no fragment, no credentials (``user:password@``)."""

Word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,252}$")]
"""A name passed to an engine as is (a Slurm partition or account, a namespace, a queue, a resource name)."""


def _plain_absolute(value: str) -> str:
    """``value`` if no part of it is '..' (a path that climbs out of the directory it names reads as another one)."""
    if ".." in value.split("/"):
        raise ValueError(f"found {_shown(value)}, expected an absolute path with no '..' part")
    return value


AbsolutePath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=4096, pattern=r"^/[^\x00-\x1f]*$"),
    AfterValidator(_plain_absolute),
]
"""An absolute file path with no '..' part (the same on the server's machine and the nodes: a relative one would
depend on the directory each side starts in)."""

DnsLabel = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$")]
"""A Kubernetes name of the DNS-label kind (RFC 1123): 1 to 63 lower-case letters, digits or '-', starting and ending
with a letter or digit (a namespace)."""

DnsName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?$")]
"""A Kubernetes object name of the DNS-subdomain kind (RFC 1123): 1 to 253 lower-case letters, digits, '-' or '.',
starting and ending with a letter or digit (a Kueue LocalQueue)."""

Gres = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,62}(?::[A-Za-z0-9_.-]*[A-Za-z_.-][A-Za-z0-9_.-]*)?$")
]
"""A Slurm GRES name, optionally with its type ('gpu', 'gpu:a100'), never a count: Stargate adds each job's GPUs per
node ('gpu:8' would ask --gres=gpu:8:N, which sbatch refuses)."""


def _engine_token_env(value: str) -> str:
    """``value`` unless it names one of the server's own settings (its value would be sent to the engine)."""
    if value.startswith("STARGATE_"):
        raise ValueError(
            f"found {_shown(value)}, expected a variable holding the engine's token, not one of the server's own "
            "settings (STARGATE_*): its value would be sent to the engine"
        )
    return value


TokenEnv = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$"), AfterValidator(_engine_token_env)]
"""The environment variable of the server that holds an engine's token (an :data:`EnvName`, not STARGATE_*)."""

ACCOUNT_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]{0,31}$")
"""A POSIX account name as Linux tools accept it: 1 to 32 characters, letters, digits, '.', '_' or '-', starting with
a letter or '_' (never a digit: ``sbatch --uid=<name>`` reads digits as a uid; never '-': it would read as an
option)."""
ACCOUNT_WORDS = (
    "a Unix account name (1 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or '_')"
)
_TEAM_ID = re.compile(ID_PATTERN)
_MAX_SHOWN = 40


def _shown(value: Any) -> str:
    """An input as an error shows it: a string quoted, shortened, every non-printable character escaped."""
    if isinstance(value, str):
        text = value if len(value) <= _MAX_SHOWN else value[: _MAX_SHOWN - 1] + "…"
        return f"'{visible(text)}'"
    return "a mapping" if isinstance(value, Mapping) else "a list" if isinstance(value, list) else visible(value)


def account_name(value: str) -> str:
    """``value`` if it is a POSIX account name (:data:`ACCOUNT_PATTERN`); else ValueError 'found X, expected Y'."""
    if not ACCOUNT_PATTERN.fullmatch(value):  # match() would take a final newline for its $
        raise ValueError(f"found {_shown(value)}, expected {ACCOUNT_WORDS}")
    return value


AccountName = Annotated[str, AfterValidator(account_name)]
"""The name of a Unix account (see :data:`ACCOUNT_PATTERN`)."""


def _team_users(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """The team → account mapping checked entry by entry: one error per bad entry, located at its team."""
    if not isinstance(value, Mapping):
        raise ValueError(f"found {_shown(value)}, expected a mapping of team ids to Unix account names")
    if len(value) > MAX_SMALL_LIST:
        raise ValueError(f"found a mapping of {len(value):,} teams, expected at most {MAX_SMALL_LIST:,} teams")
    errors: list[InitErrorDetails] = []
    for key, account in value.items():
        try:
            if not isinstance(key, str) or not _TEAM_ID.match(key):
                raise ValueError(
                    f"found the team {_shown(key)}, expected a team id (1–63 characters: lowercase letters, "
                    "digits, '.', '_' or '-', starting with a letter or digit)"
                )
            if not isinstance(account, str):
                raise ValueError(f"found {_shown(account)}, expected {ACCOUNT_WORDS}")
            account_name(account)
        except ValueError as exc:
            loc = (key if isinstance(key, str) else str(key),)
            errors.append(InitErrorDetails(type="value_error", loc=loc, input=account, ctx={"error": exc}))
    if errors:
        raise ValidationError.from_exception_data("team_users", errors)
    return handler(value)


Feature = Literal["commands", "images"]
"""What a job may need of the executor of the cluster it is placed on: to run a shell command, or a container
image. The engine places a job only on clusters whose executor has every feature it needs."""


class ExecutorHealth(Model):
    """How the server watches an executor's engine, and when it takes the clusters behind it out of service."""

    interval_s: Seconds = Field(
        default=10.0, ge=1.0, le=3600.0, description="Seconds between two health checks, 1 to 3,600."
    )
    down_after_s: Seconds = Field(
        default=60.0,
        ge=0.0,
        le=86400.0,
        description="Seconds the engine may stay unreachable (or report every node failed) before its clusters "
        "are marked down and their jobs requeued elsewhere, 0 to 86,400; 0: at the first failed check.",
    )


class _Base(Model):
    id: Id = Field(description="Executor id, referenced by providers' and clusters' `executor`, e.g. 'slurm-east'.")
    health: ExecutorHealth = Field(default_factory=ExecutorHealth, description="Health checks and failover.")


class LocalExecutorConfig(_Base):
    """Processes on the server's own machine (the embedded default)."""

    kind: Literal["local"] = Field(description="'local'.")

    def features(self) -> frozenset[str]:
        return frozenset({"commands"})


class RayExecutorConfig(_Base):
    """A Ray cluster, through its Jobs API (the dashboard's HTTP address)."""

    kind: Literal["ray"] = Field(description="'ray'.")
    address: HttpAddress = Field(
        default="http://127.0.0.1:8265",
        description="The Ray dashboard's address, e.g. 'http://ray-head:8265'; a head on the server's own machine runs "
        "each job in a bubblewrap sandbox that hides the server's state (bwrap must be installed).",
    )
    token_env: TokenEnv | None = Field(
        default=None,
        description="Environment variable of the server holding the Ray cluster's auth token; null: none (or the "
        "token Ray itself finds, e.g. ~/.ray/auth_token).",
    )
    gpu_resource: Word = Field(
        default="GPU", description="The Ray resource a job's GPUs are asked as ('GPU', or a custom resource name)."
    )

    def features(self) -> frozenset[str]:
        return frozenset({"commands"})


class SlurmExecutorConfig(_Base):
    """A Slurm cluster, through its commands (sbatch, squeue, scancel, sacct) on the server's machine."""

    kind: Literal["slurm"] = Field(description="'slurm'.")
    partition: Word | None = Field(default=None, description="Partition jobs go to; null: the cluster's default.")
    account: Word | None = Field(default=None, description="Account jobs are charged to; null: the user's default.")
    gres: Gres | None = Field(
        default="gpu",
        description="The GRES name GPUs are asked by, optionally with a type ('gpu:a100'), never a count "
        "(`--gres=<gres>:<GPUs per node>`); null when the Slurm cluster has no GRES (GPUs are then not asked of "
        "Slurm).",
    )
    slurm_conf: AbsolutePath | None = Field(
        default=None,
        description="Absolute path of the slurm.conf the commands read (SLURM_CONF); null: Slurm's default.",
    )
    bin_dir: AbsolutePath | None = Field(
        default=None, description="Absolute path of the directory holding sbatch and the other commands; null: PATH."
    )
    work_dir: AbsolutePath = Field(
        default="/tmp",
        description="Directory on the Slurm nodes in which each run gets a fresh private working directory (also "
        "its HOME and TMPDIR, removed when its command ends); it must exist on every node and let the jobs' user "
        "create directories in it. Never the server's state directory.",
    )
    log_dir: AbsolutePath | None = Field(
        default=None,
        description="Directory the runs' output files are written in (by Slurm, on each job's first node) and read "
        "from by the server: for nodes on other machines, a directory of a filesystem they share with the server, "
        "at the same path; null: <STARGATE_HOME>/runs/slurm/<executor id> (nodes on the server's machine only). "
        "Required when jobs run as another account than the server's (user, team_users): it must then be outside "
        "STARGATE_HOME, reachable by those accounts and writable by root only.",
    )
    user: AccountName | None = Field(
        default=None,
        description="The Unix account jobs run as (sbatch --uid and --gid, its primary group), known to slurmctld "
        "and the nodes; required when the server runs as root (jobs never run as root unless this says root). "
        "Null: the server's own account (a server not running as root can name only that one).",
    )
    team_users: Annotated[dict[Id, AccountName], WrapValidator(_team_users)] = Field(
        default_factory=dict,
        max_length=MAX_SMALL_LIST,
        description="Team id → the Unix account that team's jobs run as instead of user, e.g. {alpha: sg-alpha}: "
        "one account per team keeps teams from reading each other's runs. At most 1,000.",
    )

    def features(self) -> frozenset[str]:
        return frozenset({"commands"})


class KubernetesExecutorConfig(_Base):
    """A Kubernetes cluster (with Kueue when ``queue`` is set), through its API server."""

    kind: Literal["kubernetes"] = Field(description="'kubernetes'.")
    address: HttpAddress | None = Field(
        default=None, description="The API server's address; null: from the kubeconfig (or in-cluster config)."
    )
    token_env: TokenEnv | None = Field(
        default=None, description="Environment variable of the server holding a bearer token; null: kubeconfig's."
    )
    ca_file: AbsolutePath | None = Field(
        default=None, description="Absolute path of the CA bundle that signs the API server's certificate."
    )
    kubeconfig: AbsolutePath | None = Field(
        default=None, description="Absolute path of the kubeconfig to read; null: KUBECONFIG or ~/.kube/config."
    )
    namespace: DnsLabel = Field(
        default="default", description="Namespace jobs are created in (a DNS label: lower-case, digits, '-')."
    )
    queue: DnsName | None = Field(
        default=None,
        description="Kueue LocalQueue jobs are labelled for (kueue.x-k8s.io/queue-name; a DNS name); null: none.",
    )
    image: Word | None = Field(
        default=None,
        description="Image a job with a command and no image runs in; null: such jobs cannot run here.",
    )
    gpu_resource: Word = Field(default="nvidia.com/gpu", description="The extended resource GPUs are asked as.")

    def features(self) -> frozenset[str]:
        return frozenset({"images", "commands"} if self.image else {"images"})


AnyExecutorConfig = LocalExecutorConfig | RayExecutorConfig | SlurmExecutorConfig | KubernetesExecutorConfig
"""Any executor's settings (the fleet file's ``executors:`` entries parse to one of these)."""

ExecutorConfig = Annotated[AnyExecutorConfig, Field(discriminator="kind")]
"""One executor of the fleet file, by its ``kind``."""

DEFAULT_EXECUTORS: Mapping[str, AnyExecutorConfig] = {
    "local": LocalExecutorConfig(id="local", kind="local"),
    "ray": RayExecutorConfig(id="ray", kind="ray"),
    "slurm": SlurmExecutorConfig(id="slurm", kind="slurm"),
    "kubernetes": KubernetesExecutorConfig(id="kubernetes", kind="kubernetes"),
}
"""The executors every fleet has unless it declares one of the same id: one per kind, with the defaults."""


def executors_by_id(declared: Iterable[AnyExecutorConfig]) -> dict[str, AnyExecutorConfig]:
    """Every executor a fleet can name: the defaults, then the declared ones (which replace a default of their id)."""
    found = dict(DEFAULT_EXECUTORS)
    found.update({e.id: e for e in declared})
    return found


def job_needs(command: str | None, image: str | None) -> frozenset[str]:
    """The features a job needs of its cluster's executor: a command alone needs ``commands``, an image alone
    ``images``; a job with both runs on either (it needs neither)."""
    if command and image:
        return frozenset()
    if image:
        return frozenset({"images"})
    return frozenset({"commands"}) if command else frozenset()

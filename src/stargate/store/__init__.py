"""The control plane's store: SQLAlchemy models, one repository per entity, the job state machine, migrations."""

from stargate.store.database import Database, create_engine, default_url
from stargate.store.health_models import ExecutorCheckRow
from stargate.store.migrate import current_revision, downgrade, head_revision, upgrade
from stargate.store.models import (
    Base,
    FleetPlanRow,
    FleetVersionRow,
    JobEventRow,
    JobRow,
    QueueRow,
    RunRow,
    TeamRow,
    TokenRow,
    fit_actor,
    format_job_id,
    parse_job_id,
)
from stargate.store.service_models import ServiceReplicaRow, ServiceRow, ServiceTrafficRow
from stargate.store.status import FINAL_STATUSES, LEGAL_TRANSITIONS, JobStatus, is_legal
from stargate.store.transitions import (
    BatchTransitionError,
    Current,
    IllegalTransitionError,
    Move,
    insert_submitted,
    lock_current,
    record_submission,
    record_submissions,
    transition,
    transition_many,
)

__all__ = [
    "FINAL_STATUSES",
    "LEGAL_TRANSITIONS",
    "Base",
    "BatchTransitionError",
    "Current",
    "Database",
    "ExecutorCheckRow",
    "FleetPlanRow",
    "FleetVersionRow",
    "IllegalTransitionError",
    "JobEventRow",
    "JobRow",
    "JobStatus",
    "Move",
    "QueueRow",
    "RunRow",
    "ServiceReplicaRow",
    "ServiceRow",
    "ServiceTrafficRow",
    "TeamRow",
    "TokenRow",
    "create_engine",
    "current_revision",
    "default_url",
    "downgrade",
    "fit_actor",
    "format_job_id",
    "head_revision",
    "insert_submitted",
    "is_legal",
    "lock_current",
    "parse_job_id",
    "record_submission",
    "record_submissions",
    "transition",
    "transition_many",
    "upgrade",
]

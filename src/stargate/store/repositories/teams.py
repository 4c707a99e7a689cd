"""Teams and queues: a copy of the applied fleet's teams and queues, kept in step by :func:`sync`."""

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from stargate.domain import Fleet
from stargate.store.models import QueueRow, TeamRow


def sync(session: Session, fleet: Fleet) -> None:
    """Make the teams and queues tables equal to ``fleet``'s (insert, update, delete)."""
    queue_ids = {q.id for q in fleet.queues}
    team_ids = {t.id for t in fleet.teams}
    session.execute(delete(QueueRow).where(QueueRow.id.not_in(queue_ids)))
    session.execute(delete(TeamRow).where(TeamRow.id.not_in(team_ids)))
    for team in fleet.teams:
        session.merge(TeamRow(id=team.id, name=team.name))
    session.flush()
    for q in fleet.queues:
        session.merge(
            QueueRow(
                id=q.id,
                team_id=q.team,
                cohort=q.cohort,
                quotas=[quota.model_dump(mode="json") for quota in q.quotas],
                priority_classes=list(q.priority_classes),
                default_priority_class=q.default_priority_class,
            )
        )
    session.flush()


def list_teams(session: Session) -> list[TeamRow]:
    """Every team, by id."""
    return list(session.scalars(select(TeamRow).order_by(TeamRow.id)))


def list_queues(session: Session, team: str | None = None) -> list[QueueRow]:
    """Every queue (of ``team`` when given), by id."""
    query = select(QueueRow).order_by(QueueRow.id)
    if team is not None:
        query = query.where(QueueRow.team_id == team)
    return list(session.scalars(query))


def get_team(session: Session, team_id: str) -> TeamRow | None:
    """The team ``team_id``, or None."""
    return session.get(TeamRow, team_id)

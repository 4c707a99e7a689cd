"""The database's installation id: a random UUID written once (by the migration, or here for a schema made without
migrations), never changed; what executors key their files outside the database by."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from stargate.store.models import InstallationRow


def installation_id(session: Session) -> str:
    """This database's installation id; written now when the table is still empty (a schema made by ``create_all``).

    Two writers racing on an empty table may both insert: the oldest row (then the smallest id) is the id, for both.
    """
    query = select(InstallationRow.id).order_by(InstallationRow.created_at, InstallationRow.id).limit(1)
    found = session.scalars(query).first()
    if found is not None:
        return found
    session.add(InstallationRow(id=str(uuid.uuid4()), created_at=datetime.now(UTC)))
    session.flush()
    found = session.scalars(query).first()
    assert found is not None
    return found

"""Alembic environment: runs migrations on a connection handed in by Stargate, or on ``-x url=...``."""

from alembic import context
from sqlalchemy import Connection

from stargate.store.database import create_engine
from stargate.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate the connection in ``config.attributes['connection']``, else the database named by ``-x url=``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("error: pass the database URL, e.g. -x url=sqlite:///.stargate/stargate.db")
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("error: offline (SQL script) mode is not supported; run against a database")
run_migrations_online()

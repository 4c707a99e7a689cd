"""A PostgreSQL that stops answering fails a request within seconds instead of hanging it (connect timeout)."""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from stargate.store import Database


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database or proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize(("query", "bound_s"), [("", 8.0), ("?connect_timeout=2", 4.0)])
def test_a_database_that_never_answers_fails_within_seconds(silent_listener: int, query: str, bound_s: float) -> None:
    db = Database.open(f"postgresql+psycopg://u:p@127.0.0.1:{silent_listener}/db{query}")
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError), db.read() as session:
            session.execute(text("SELECT 1"))
    finally:
        db.close()
    took = time.monotonic() - started
    assert 1.0 < took < bound_s, f"took {took:.1f} s"  # the URL's own connect_timeout wins over the default (5 s)

"""The proxy's client to the replicas: HTTP/1.1 over keep-alive loopback connections, one pool per replica port.

A general client (httpx) spent about 1 ms of CPU per request here, more than the rest of the proxy together (see
bench/README.md, "Proxy overhead"): this one writes a request in one write and reads the answer's head and body with
the event loop's streams, ``Content-Length``, chunked or up to the close. A pooled connection the replica has closed
meanwhile is dropped before use; an idempotent request that fails on a reused connection before any byte of an
answer is sent once more on a new connection to the same replica (a keep-alive race, not a dead replica). Another
request (POST, PATCH) is never written twice: it reuses only a connection idle for less than :data:`FRESH_S` (one a
replica's keep-alive timeout cannot have closed yet), else it opens a new one.

Errors: :class:`Unreachable` when the replica refused the connection or closed it before answering (its ``sent``
says whether the request may have reached the replica: the proxy tries another replica only when it did not, or
when the request is idempotent), :class:`CutOff` when an answer stopped before its end. A request cancelled while
it waits for its answer (the client went away) closes its connection: the replica sees its request dropped.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from stargate.server.inference.replica_job import HOST

CONNECT_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 600.0
"""How long a replica may take to start an answer (a request may wait in its queue) or between two reads, s."""
READ_BYTES = 64 * 1024
IDLE_PER_PORT = 256
"""The most idle connections kept to one replica."""
HEAD_LIMIT = 64 * 1024
"""The longest answer head (status line and headers) read, bytes."""
FRESH_S = 1.0
"""The longest a kept connection may have been idle to carry a request that is not idempotent, s."""
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""The methods a request may be sent again with (RFC 9110 9.2.2)."""


class Unreachable(Exception):
    """The replica refused the connection, or closed it before any byte of an answer: nothing was answered.
    ``sent``: the request was written (the replica may have received it, and run it)."""

    def __init__(self, why: str, sent: bool) -> None:
        super().__init__(why)
        self.sent = sent


class CutOff(Exception):
    """An answer stopped before its end (the replica died, or sent something that is not HTTP/1.1)."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self) -> bool:
        """False once the replica closed it (or it broke)."""
        return not (self.reader.at_eof() or self.writer.is_closing() or self.reader.exception() is not None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class Answer:
    """An answer whose head was read: status, headers (lower-case names) and its body, read as it is iterated."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: AsyncGenerator[bytes, None]
    chunked: bool = False
    length: int | None = None

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class Pool:
    """Keep-alive connections to the replicas, by port."""

    _idle: dict[int, list[_Connection]] = field(default_factory=dict)

    async def send(
        self, port: int, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """Send one request to the replica on ``port`` and read its answer's head; :class:`Unreachable` when it
        did not answer, ``TimeoutError`` when it did not start to in time."""
        lines = [f"{method} ".encode(), target, b" HTTP/1.1\r\nhost: ", f"{HOST}:{port}".encode(), b"\r\n"]
        for name, value in headers:
            lines += [name, b": ", value, b"\r\n"]
        lines += [b"content-length: ", str(len(body)).encode(), b"\r\n\r\n", body]
        request = b"".join(lines)
        idempotent = method in IDEMPOTENT
        connection = self._take(port, None if idempotent else FRESH_S)
        if connection is not None:
            try:
                return await self._exchange(port, connection, method, request)
            except Unreachable:
                if not idempotent:
                    raise
                # the replica closed the kept connection meanwhile: once more on a new one
        return await self._exchange(port, await self._open(port), method, request)

    def close(self) -> None:
        """Close every idle connection."""
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take(self, port: int, fresh_s: float | None) -> _Connection | None:
        """The idle connection given back last, if usable (and idle for at most ``fresh_s``, when given)."""
        idle = self._idle.get(port)
        while idle:
            connection = idle.pop()
            if not connection.usable():
                connection.close()
            elif fresh_s is not None and time.monotonic() - connection.idle_since > fresh_s:
                idle.append(connection)  # the freshest is too old: so are the others
                return None
            else:
                return connection
        return None

    def _give_back(self, port: int, connection: _Connection) -> None:
        idle = self._idle.setdefault(port, [])
        if connection.usable() and len(idle) < IDLE_PER_PORT:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            connection.close()

    async def _open(self, port: int) -> _Connection:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(HOST, port, limit=HEAD_LIMIT)
        except ConnectionRefusedError:
            raise Unreachable("connection refused", sent=False) from None
        except TimeoutError:
            raise Unreachable(f"no connection within {CONNECT_TIMEOUT_S:g} s", sent=False) from None
        except OSError as exc:
            raise Unreachable(_why(exc), sent=False) from None
        return _Connection(reader, writer)

    async def _exchange(self, port: int, connection: _Connection, method: str, request: bytes) -> Answer:
        """Write the request and read the answer's head (a 1xx head is skipped)."""
        try:
            connection.writer.write(request)
            await connection.writer.drain()
            while True:
                async with asyncio.timeout(ANSWER_TIMEOUT_S):
                    head = await connection.reader.readuntil(b"\r\n\r\n")
                status, headers, keep = _parse_head(head)
                if not 100 <= status < 200:
                    break
        except (TimeoutError, asyncio.CancelledError):
            connection.close()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            connection.close()
            raise Unreachable(_why(exc), sent=True) from None
        length_text = next((v for k, v in headers if k == b"content-length"), None)
        chunked = b"chunked" in (next((v for k, v in headers if k == b"transfer-encoding"), b"") or b"").lower()
        if method == "HEAD" or status in (204, 304):
            length: int | None = 0
        elif chunked:
            length = None
        elif length_text is not None and length_text.strip().isdigit():
            length = int(length_text)
        else:
            length, keep = None, False  # read up to the close
        body = self._body(port, connection, length, chunked, keep)
        return Answer(status, headers, body, chunked, length)

    async def _body(
        self, port: int, connection: _Connection, length: int | None, chunked: bool, keep: bool
    ) -> AsyncGenerator[bytes, None]:
        """The answer's body as it comes; the connection goes back to the pool once it was read whole."""
        reader, whole = connection.reader, False
        try:
            if chunked:
                async for piece in _chunks(reader):
                    yield piece
            elif length is not None:
                left = length
                while left > 0:
                    async with asyncio.timeout(ANSWER_TIMEOUT_S):
                        piece = await reader.read(min(left, READ_BYTES))
                    if not piece:
                        raise CutOff(f"the answer ended after {length - left:,} of {length:,} bytes")
                    left -= len(piece)
                    yield piece
            else:
                while True:
                    async with asyncio.timeout(ANSWER_TIMEOUT_S):
                        piece = await reader.read(READ_BYTES)
                    if not piece:
                        break
                    yield piece
            whole = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, TimeoutError) as exc:
            raise CutOff(_why(exc)) from None
        finally:
            if whole and keep:
                self._give_back(port, connection)
            else:
                connection.close()


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The data of a chunked body (its trailers are read and dropped)."""
    while True:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            piece = await reader.readexactly(size)
            await reader.readexactly(2)
        yield piece


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    """(status, headers with lower-case names, whether the connection may be kept) of an answer's head;
    ValueError when it is not HTTP/1.x."""
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/1."):
        raise ValueError(f"found {lines[0][:40]!r}, expected an HTTP/1.x status line")
    status = int(rest[:3])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    connection = next((v.lower() for k, v in headers if k == b"connection"), b"")
    keep = b"keep-alive" in connection if version == b"HTTP/1.0" else b"close" not in connection
    return status, headers, keep


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection closed before an answer" if not exc.partial else "the connection closed mid-answer"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""The connections of `mask2hand serve`: how long a request may take to arrive, how many may be open.

`guarded_protocol(limits)` is uvicorn's h11 protocol with the two limits uvicorn lacks:
- read timeout: a request's headers and body must have arrived within `read_timeout` seconds of
  the connection being ready for it (opened, or its previous answer sent). A connection
  trickling a byte at a time or stopping halfway is closed then. An idle kept-alive connection is
  closed after IDLE_TIMEOUT_S (uvicorn's timeout_keep_alive). A connection upgraded to a
  WebSocket (the live mode, mask2hand.serve.live) is no longer an HTTP request and has no deadline.
- connection limit: at most `max_connections` open at once (connection_limit: below the process's
  open-file limit). A connection over it closes the oldest open one still waiting for its request,
  so idle half-requests cannot lock a real client out; when every open connection has a request
  being answered, the new one gets a 503 and is closed. The log says so at most once every
  LOG_EVERY_S, with a count.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from mask2hand.errors import Mask2HandError

try:
    import resource
except ImportError:  # Windows: no RLIMIT_NOFILE
    resource = None

IDLE_TIMEOUT_S = 5
"""Seconds a kept-alive connection may sit idle between requests."""

DEFAULT_MAX_CONNECTIONS = 256
"""Connections open at once when the open-file limit allows: a browser opens about six."""

BACKLOG = 64
"""The listening socket's backlog; asyncio accepts up to this many connections in one go, each a
file until its protocol closes it."""

RESERVED_FILES = 64
"""Files the server needs besides its connections: the model's files, the log, pipes, the upload
being read."""

LOG_EVERY_S = 10.0

logger = logging.getLogger("uvicorn.error")


@dataclass(frozen=True)
class ConnectionLimits:
    """max_connections: connections open at once; read_timeout: seconds for a request to arrive."""

    max_connections: int
    read_timeout: float


def connection_limit(file_limit: int | None = None) -> int:
    """The most connections to keep open under an open-file limit (default: this process's soft
    RLIMIT_NOFILE): DEFAULT_MAX_CONNECTIONS, or fewer so that each connection's socket and spooled
    upload, BACKLOG sockets being accepted and RESERVED_FILES fit. Raises Mask2HandError when the
    limit leaves room for none."""
    if file_limit is None:
        if resource is None:
            return DEFAULT_MAX_CONNECTIONS
        file_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if file_limit == resource.RLIM_INFINITY:
            return DEFAULT_MAX_CONNECTIONS
    room = (file_limit - BACKLOG - RESERVED_FILES) // 2
    if room < 1:
        raise Mask2HandError(f"the open-file limit of {file_limit} (ulimit -n) is too low to serve; raise it to at "
                             f"least {BACKLOG + RESERVED_FILES + 2}")
    return min(DEFAULT_MAX_CONNECTIONS, room)


def _busy_response() -> bytes:
    body = json.dumps({"error": "the server has too many open connections; try again in a second"}).encode()
    head = ("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n")
    return head.encode() + body


BUSY_RESPONSE = _busy_response()


class OncePer:
    """Counts events and logs a warning about them at most once every `seconds`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.count = 0
        self._next = 0.0

    def note(self, loop: asyncio.AbstractEventLoop, message: str) -> None:
        self.count += 1
        if loop.time() >= self._next:
            logger.warning("%s: %d since the last such line", message, self.count)
            self.count = 0
            self._next = loop.time() + self.seconds


class GuardedH11Protocol(H11Protocol):
    """uvicorn's H11Protocol with a read timeout and a connection limit (see the module docstring);
    made per server by guarded_protocol."""

    limits: ClassVar[ConnectionLimits]
    evicted: ClassVar[OncePer]
    refused: ClassVar[OncePer]

    _ready_at: float
    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Hand the connection to the WebSocket protocol (the live mode): its messages may come
        whenever the client sends them, so the read deadline no longer applies."""
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._wait_for_request()

    def waiting_for_request(self) -> bool:
        """Whether the client still owes the server (part of) a request: none of it is being answered."""
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing()

    def _wait_for_request(self) -> None:
        self._ready_at = self.loop.time()
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        self._read_deadline = self.loop.call_later(self.limits.read_timeout, self._read_timed_out)

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.waiting_for_request():
            self.transport.close()

    def _make_room(self) -> None:
        """Close the oldest connection waiting for its request, or refuse this one."""
        others = [c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol)]
        if sum(not c.transport.is_closing() for c in others) < self.limits.max_connections:
            return  # connections closed a moment ago still count until their connection_lost
        waiting = [c for c in others if c.waiting_for_request()]
        if waiting:
            min(waiting, key=lambda c: c._ready_at).transport.close()
            self.evicted.note(self.loop, f"connection limit ({self.limits.max_connections}) reached: closed the "
                                         "connections that had waited longest for their request")
        else:
            self.transport.write(BUSY_RESPONSE)
            self.transport.close()
            self.refused.note(self.loop, f"connection limit ({self.limits.max_connections}) reached with every "
                                         "connection being answered: refused new ones with 503")


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A GuardedH11Protocol class holding `limits`, for uvicorn.Config(http=...)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"limits": limits, "evicted": OncePer(LOG_EVERY_S), "refused": OncePer(LOG_EVERY_S)})

"""Which requests may reach the app: the Host allow-list and the same-origin rule for POSTs.

A page on another site can make a browser send requests to this server; two rules keep it out:
- the Host header must name this server: 127.0.0.1, localhost, [::1] or the address given to
  `--host`, without a port or with the server's own port. Any other name (say one an attacker's
  DNS points at 127.0.0.1: DNS rebinding) is answered 400;
- a request that changes something (any method but GET, HEAD, OPTIONS) and carries an Origin
  header must come from the server's own origin, http://<its Host header>; another is answered
  403. Browsers send Origin with every cross-origin POST; a request without one (curl, a script)
  comes from no web page and passes.
- a WebSocket handshake (the live mode) follows both rules: browsers send Origin with every one,
  and one from another origin is refused before the socket opens (HTTP 403).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_names(host: str) -> frozenset[str]:
    """The names (lower case, without a port) a Host header may give for a server listening on
    `host`: the LOCAL_HOSTS and `host` itself, an IPv6 address in brackets."""
    own = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return frozenset(name.lower() for name in (*LOCAL_HOSTS, own))


def split_host(header: str) -> tuple[str, str | None]:
    """A Host header -> (name, port or None): "localhost:8000" -> ("localhost", "8000"),
    "[::1]:80" -> ("[::1]", "80"), "[::1]" -> ("[::1]", None)."""
    if header.endswith("]") or ":" not in header:
        return header, None
    name, _, port = header.rpartition(":")
    return name, port


class SameOriginOnly:
    """ASGI middleware answering 400 to a Host not in host_names(host) and 403 to a cross-origin
    request that changes something, both as {"error": "<one line>"}."""

    def __init__(self, app: ASGIApp, host: str):
        self.app = app
        self.names = host_names(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "").strip().lower()
        name, port = split_host(host)
        server = scope.get("server")
        if name not in self.names or port not in (None, str(server[1]) if server else None):
            allowed = ", ".join(sorted(self.names))
            await self._refuse(400, f"this server answers to the host names {allowed} only, not {host!r}; "
                                    "open it by one of them", scope, receive, send)
            return
        origin = headers.get("origin")
        changes = scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS
        if changes and origin is not None and origin.lower() != f"http://{host}":
            await self._refuse(403, f"a page from {origin!r} may not use this server; open http://{host}/ instead",
                               scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(status: int, message: str, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # closing before accepting: the server answers the handshake 403
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await JSONResponse({"error": message}, status_code=status)(scope, receive, send)

"""The request-body size limit: a larger request is answered 413 before it is read into the app.

A declared Content-Length over the limit is refused at once; a body without one (chunked) is
counted as it arrives and refused when it passes the limit, so a client cannot make the server
spool gigabytes to disk by leaving the length out.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised while the body is read; an HTTPException, so the app's handler answers it with 413
    (FastAPI re-raises HTTPExceptions met while it parses a form, and wraps anything else in a 400)."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=too_large_message(limit))


def too_large_message(limit: int) -> str:
    return (f"the upload is larger than the server's limit of {limit / 2 ** 20:g} MB; send a smaller file "
            "(a silhouette PNG is a few kB) or start the server with a larger --max-upload-mb")


class BodySizeLimit:
    """ASGI middleware refusing HTTP requests whose body exceeds `max_bytes` with 413 and
    {"error": "<one line>"}."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted_receive, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": too_large_message(self.max_bytes)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

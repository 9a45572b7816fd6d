"""The live mode of `mask2hand serve`: camera frames over a WebSocket in, smoothed hands out.

    WS /api/live      the page /live opens it; one HandStream (mask2hand.inference.stream) per socket

Messages from the client:
- binary, one frame: a 12-byte header (width and height as little-endian uint16, the time the
  frame was taken in seconds as a little-endian float64), then width x height bytes, one per
  pixel, row by row: 0 background, anything else hand. At most MAX_LIVE_SIDE a side.
- text, settings (JSON): {"side": "right"|"left", "focal": pixels or null, "smoothing": true|false};
  they start a new stream (the filter forgets the frames before).

Messages to the client (JSON text):
- {"type": "hello", faces (F,3), bones (20,2), joint_colors (21,), input_size}, once on connecting;
- {"type": "answer", frame (its count on this socket), vertices (V,3) and joints (21,3) in meters,
  camera space, iou, seconds (the server's time for it)}, one per frame, in order;
- {"type": "settings", side, focal, smoothing}, after settings are taken;
- {"type": "error", "error": "<one line>"} for a frame or setting that cannot be used (a
  malformed message, an empty mask, the queue full); the socket stays open and the next frame is
  answered as usual.

Frames take their turn on the prediction queue with the uploads (mask2hand.serve.prediction_queue),
one prediction at a time. The page sends its next frame when the answer to the last one has
arrived, so a slow server lowers the frame rate instead of piling frames up. The Host and Origin
rules of mask2hand.serve.hosts apply to the socket's handshake; at most MAX_LIVE_SOCKETS are open at once,
and one that sends nothing for LIVE_IDLE_S is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from mask2hand.errors import Mask2HandError
from mask2hand.export.figures import FREIHAND_BONES, joint_colors
from mask2hand.image.camera import check_focal
from mask2hand.inference.prepare import check_side
from mask2hand.inference.stream import HandStream
from mask2hand.serve.answers import VIEWER_DECIMALS
from mask2hand.serve.uploads import MAX_NAME_LENGTH

if TYPE_CHECKING:
    from mask2hand.serve.service import PredictService

HEADER = struct.Struct("<HHd")
"""A frame message's header: width, height (uint16), the time it was taken (float64 seconds)."""

MAX_LIVE_SIDE = 1024
"""Largest side of a live frame in pixels: a camera's silhouette needs a few hundred."""

MAX_LIVE_SOCKETS = 4
"""Live sockets open at once; one more is closed at once with a reason."""

LIVE_IDLE_S = 60.0
"""Seconds a live socket may go without a message before it is closed, so that idle ones do not
hold the MAX_LIVE_SOCKETS places."""

LIVE_FPS = 30.0
"""The frame rate the filter assumes for a frame that comes without a usable time."""

logger = logging.getLogger("uvicorn.error")


def decode_frame(message: bytes) -> tuple[np.ndarray, float]:
    """A binary frame message -> (mask (H,W) uint8 0/255, the time it was taken); Mask2HandError for
    one that does not follow the format."""
    if len(message) < HEADER.size:
        raise Mask2HandError(f"a frame message is a {HEADER.size}-byte header and the pixels; got {len(message)} "
                             "bytes")
    width, height, taken = HEADER.unpack_from(message)
    if not (0 < width <= MAX_LIVE_SIDE and 0 < height <= MAX_LIVE_SIDE):
        raise Mask2HandError(f"a live frame must be 1 to {MAX_LIVE_SIDE} pixels a side, got {width}x{height}")
    if len(message) != HEADER.size + width * height:
        raise Mask2HandError(f"a {width}x{height} frame needs {width * height} pixel bytes after the header, got "
                             f"{len(message) - HEADER.size}")
    pixels = np.frombuffer(message, dtype=np.uint8, offset=HEADER.size).reshape(height, width)
    return np.where(pixels > 0, np.uint8(255), np.uint8(0)), taken


def parse_settings(text: str) -> dict[str, Any]:
    """A settings message -> {side, focal, smoothing}, checked; Mask2HandError naming the bad field."""
    try:
        data = json.loads(text[:1000])
    except (ValueError, RecursionError):
        raise Mask2HandError("a text message must be JSON settings such as {\"side\": \"left\", \"focal\": 500, "
                             "\"smoothing\": true}") from None
    if not isinstance(data, dict) or set(data) - {"side", "focal", "smoothing"}:
        raise Mask2HandError("the settings are a JSON object with side, focal and smoothing only")
    focal = data.get("focal")
    if focal is not None and (isinstance(focal, bool) or not isinstance(focal, (int, float))):
        raise Mask2HandError(f"focal must be a number of pixels or null, got {str(focal)[:MAX_NAME_LENGTH]!r}")
    smoothing = data.get("smoothing", True)
    if not isinstance(smoothing, bool):
        raise Mask2HandError("smoothing must be true or false")
    side = data.get("side", "right")
    return {"side": check_side(side if isinstance(side, str) else repr(side)[:MAX_NAME_LENGTH]),
            "focal": None if focal is None else check_focal(float(focal)), "smoothing": smoothing}


def answer_json(prediction, frame: int, seconds: float) -> dict[str, Any]:
    """The answer message of one frame's Prediction."""
    return {"type": "answer", "frame": frame, "iou": round(float(prediction.iou), 4),
            "vertices": np.round(prediction.vertices, VIEWER_DECIMALS).tolist(),
            "joints": np.round(prediction.joints, VIEWER_DECIMALS).tolist(), "seconds": round(seconds, 4)}


class LiveSockets:
    """The live sockets open now, at most `limit`."""

    def __init__(self, limit: int = MAX_LIVE_SOCKETS):
        self.limit = limit
        self.open = 0


async def serve_live(websocket: WebSocket, service: "PredictService", sockets: LiveSockets) -> None:
    """Run one live socket until the client closes it (see the module docstring)."""
    from mask2hand.inference.smoothing import OneEuroConfig

    await websocket.accept()
    if sockets.open >= sockets.limit:
        await websocket.close(code=1013, reason=f"{sockets.limit} live sessions are open; try again later")
        return
    sockets.open += 1
    model = service.model
    settings = {"side": "right", "focal": None, "smoothing": True}

    def new_stream() -> HandStream:
        return HandStream(model, fps=LIVE_FPS, smoothing=OneEuroConfig() if settings["smoothing"] else None,
                          focal=settings["focal"], side=settings["side"])

    try:
        stream = new_stream()
        await websocket.send_json({"type": "hello", "faces": model.faces.tolist(),
                                   "bones": [list(bone) for bone in FREIHAND_BONES], "joint_colors": joint_colors(),
                                   "input_size": model.input_size})
        frame = 0
        while True:
            try:
                message = await asyncio.wait_for(websocket.receive(), LIVE_IDLE_S)
            except asyncio.TimeoutError:
                await websocket.close(code=1000, reason=f"no frame for {LIVE_IDLE_S:g} s")
                return
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("text") is not None:
                    settings = parse_settings(message["text"])
                    stream = new_stream()
                    await websocket.send_json({"type": "settings", **settings})
                    continue
                mask, taken = decode_frame(message.get("bytes") or b"")
                frame += 1
                started = time.perf_counter()
                prediction = await service.queue.run(lambda: stream.push(mask, timestamp=taken,
                                                                         name=f"live frame {frame}"))
                await websocket.send_json(answer_json(prediction, frame, time.perf_counter() - started))
            except Mask2HandError as exc:
                await websocket.send_json({"type": "error", "error": " ".join(str(exc).split())})
            except WebSocketDisconnect:
                raise
            except Exception as exc:  # the server's own fault: logged, one line to the client, the socket goes on
                logger.exception("live frame failed")
                await websocket.send_json({"type": "error", "error": f"internal error of the server "
                                                                      f"({type(exc).__name__}); see the server's log"})
    except WebSocketDisconnect:
        return
    finally:
        sockets.open -= 1

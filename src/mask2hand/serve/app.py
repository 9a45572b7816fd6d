"""`create_app(model)`: the FastAPI app of `mask2hand serve`, the page and the HTTP API.

    GET  /                           the page (static/index.html; its CSS and JS under /static/)
    GET  /api/health                 {"status": "ok", version, model, hand, device, counts, limits}
    GET  /api/models                 {"models": the shipped models (mask2hand models), "loaded": the one served}
    POST /api/predict                multipart form: mask (file: PNG, JPEG, BMP, TIFF, PGM, ... or .npy),
                                     optional focal (px), K (JSON 3x3), fit (bool), hypotheses (int),
                                     side (right/left) -> the answer (mask2hand.serve.answers.Answer.to_json)
    GET  /api/answers/{id}/{file}    the answer's <stem>.obj, .ply, .json, <stem>_hyp<k>.obj, as
                                     `mask2hand predict` writes them
    GET  /live                       the live page (static/live.html): the camera, a silhouette made in the
                                     browser, the smoothed 3-D hand as it moves
    WS   /api/live                   frames in, smoothed hands out (mask2hand.serve.live)

Every error is JSON {"error": "<one line>"}: 400 for a bad upload, option or request (the library's
Mask2HandError message, as `mask2hand predict` prints it) and for a Host header that does not name
this server, 403 for a cross-origin POST (mask2hand.serve.hosts), 404 for an unknown path or an
answer no longer kept, 413 for a body over the size limit, 503 with Retry-After when `max_queue`
predictions already wait (mask2hand.serve.prediction_queue), 500 (and a traceback in the server's
log only) for a fault of the server itself.

Predictions run on the prediction queue's own thread; health is answered on the event loop, the
model list, the page, its files and the downloads on the thread pool, so none of them waits behind
predictions.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from mask2hand.errors import Mask2HandError
from mask2hand.nn.pretrained import list_models
from mask2hand.serve import DEFAULT_MAX_UPLOAD_MB
from mask2hand.serve.answers import DOWNLOADS_PATH, MEDIA_TYPES
from mask2hand.serve.hosts import SameOriginOnly
from mask2hand.serve.limits import BodySizeLimit
from mask2hand.serve.live import LiveSockets, serve_live
from mask2hand.serve.prediction_queue import DEFAULT_MAX_QUEUE, ServerBusy
from mask2hand.serve.service import KEPT_ANSWERS, PredictService
from mask2hand.serve.uploads import parse_options, upload_name
from mask2hand.version import __version__

if TYPE_CHECKING:
    from mask2hand.inference.api import Mask2Hand

CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; script-src 'self'; style-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
"""The page loads nothing from elsewhere; the browser enforces it."""

def static_folder() -> Path:
    """The folder of the page's files inside the installed package."""
    return Path(str(resources.files("mask2hand") / "serve" / "static"))


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    """A one-line reason for a request FastAPI could not match to the endpoint's fields."""
    first = (exc.errors() or [{}])[0]
    field = str(first.get("loc", ("", "?"))[-1])
    if field == "mask":
        return "the request has no mask file: send it as the multipart/form-data file field 'mask'"
    return f"bad form field '{field}': {first.get('msg', 'invalid')}"


def create_app(model: "Mask2Hand", max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               kept_answers: int = KEPT_ANSWERS, max_queue: int = DEFAULT_MAX_QUEUE,
               host: str = "127.0.0.1") -> FastAPI:
    """The web app serving `model` (a loaded Mask2Hand, PyTorch runtime for fit and hypotheses).

    max_upload_mb: largest request body (MB of 2^20 bytes) before 413; kept_answers: how many
    answers stay downloadable; max_queue: predictions that may wait behind the running one
    before 503; host: the address the server listens on, a Host name it answers to besides
    127.0.0.1, localhost and [::1].
    """
    service = PredictService(model, kept_answers, max_queue)
    max_bytes = int(max_upload_mb * 2 ** 20)
    static = static_folder()
    # no /docs page: FastAPI's loads its scripts from a CDN, and nothing here may reach the network
    app = FastAPI(title="mask2hand", version=__version__, docs_url=None, redoc_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
    app.add_middleware(SameOriginOnly, host=host)  # the outermost: refuses a foreign request before reading its body
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.exception_handler(Mask2HandError)
    async def bad_input(request: Request, exc: Mask2HandError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(ServerBusy)
    async def busy(request: Request, exc: ServerBusy) -> JSONResponse:
        response = error_response(503, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, _validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = "no such page or endpoint" if exc.status_code == 404 and exc.detail == "Not Found" else exc.detail
        return error_response(exc.status_code, message)

    # the traceback goes to the server's log (Starlette re-raises the error to uvicorn), never to the client
    @app.exception_handler(Exception)
    async def server_fault(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error of the server ({type(exc).__name__}); see the server's log")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(static / "index.html", headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.get("/live", include_in_schema=False)
    def live_page() -> FileResponse:
        return FileResponse(static / "live.html", headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    live_sockets = LiveSockets()

    @app.websocket("/api/live")
    async def live(websocket: WebSocket) -> None:
        await serve_live(websocket, service, live_sockets)

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "version": __version__, "model": model.model_identity, "hand": model.hand_identity,
                "device": str(getattr(model.runner, "device", "onnxruntime")), "input_size": model.input_size,
                "requests": service.requests, "failed": service.failed, "queued": service.queue.pending,
                "live_sessions": live_sockets.open,
                "max_upload_mb": max_upload_mb, "kept_answers": kept_answers, "max_queue": max_queue}

    @app.get("/api/models")
    def models() -> dict:
        return {"models": list_models(), "loaded": model.model_identity}

    # the event loop only awaits: the fields (a K of megabytes) are parsed and the answer encoded on
    # the thread pool, the prediction runs on the queue's thread
    @app.post("/api/predict")
    async def predict(mask: UploadFile = File(...), focal: str | None = Form(None), K: str | None = Form(None),
                      fit: str | None = Form(None), hypotheses: str | None = Form(None),
                      side: str | None = Form(None)) -> JSONResponse:
        options = await run_in_threadpool(parse_options, focal=focal, K=K, fit=fit, hypotheses=hypotheses, side=side)
        answer = await service.predict(mask.file, upload_name(mask.filename), options)
        # already plain JSON values (non-finite numbers as null): skip FastAPI's slow generic encoder
        return await run_in_threadpool(lambda: JSONResponse(answer.to_json()))

    @app.get(DOWNLOADS_PATH + "/{answer_id}/{name}")
    def download(answer_id: str, name: str) -> Response:
        answer = service.answer(answer_id)
        if answer is None:
            raise HTTPException(404, f"answer {answer_id} is not kept (the server keeps the last {kept_answers}); "
                                     "predict again")
        files = answer.downloads
        if name not in files:
            raise HTTPException(404, f"answer {answer_id} has no file {name}; it has " + ", ".join(files))
        return Response(files[name](), media_type=MEDIA_TYPES[Path(name).suffix],
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return app

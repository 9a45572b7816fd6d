"""The local web app and HTTP API of `mask2hand serve`: one loaded model behind a FastAPI app.

Modules, one job each:
- `uploads`: one `POST /api/predict` request (the mask file and the form's options) -> the
  library's inputs, through the same reader and checks as `mask2hand predict`;
- `service`: the loaded model, run for one request at a time, and the answers kept for download;
- `answers`: the JSON answer (the per-input JSON `mask2hand predict` writes, the mesh, an overlay
  image) and its downloadable files (OBJ, PLY, GLB, JSON, written by mask2hand.export.prediction);
- `limits`: the request-body size limit (HTTP 413);
- `prediction_queue`: predictions one at a time on their own thread, a bounded number waiting (503);
- `hosts`: the Host allow-list and the same-origin rule for POSTs (400, 403);
- `connections`: uvicorn's connection handling with a read timeout and a connection limit;
- `live`: the live mode's WebSocket: camera silhouettes in, smoothed hands out, one stream per socket;
- `app`: `create_app(model)`, the FastAPI app: the pages, the API, the errors as one-line JSON;
- `static/`: the page (HTML, CSS, its own small WebGL viewer), served as files, nothing fetched
  from the network.

FastAPI, uvicorn, python-multipart and wsproto are the optional extra `mask2hand[serve]`: this package
imports them, nothing below it does, and importing `mask2hand.serve` itself needs none of them.
"""

DEFAULT_MAX_UPLOAD_MB = 20.0
"""Largest request body by default (`--max-upload-mb`): far above any silhouette (a 224 x 224 PNG
is a few kB, an 8000 x 8000 one some MB), far below what would strain the server."""

DEFAULT_READ_TIMEOUT_S = 30.0
"""Seconds a request (headers and body) may take to arrive by default (`--read-timeout`): a 20 MB
upload at 1 MB/s fits."""

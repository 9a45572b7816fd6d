"""`mask2hand serve`'s HTTP API on the shipped model: answers, the CLI's JSON and messages, limits, concurrency,
and a server that stays reachable (its queue, Host and Origin rules, timeouts and connection limit)."""

from __future__ import annotations

import base64
import io
import json
import re
import resource
import select
import socket
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier, Event

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # newer Starlette asks for httpx2 but still works with httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from mask2hand import Mask2Hand, cli  # noqa: E402
from mask2hand.errors import Mask2HandError  # noqa: E402
from mask2hand.export.files import json_text  # noqa: E402
from mask2hand.image.files import MAX_IMAGE_SIDE  # noqa: E402
from mask2hand.nn.pretrained import list_models  # noqa: E402
from mask2hand.serve.app import create_app, static_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FOCAL = "492.8"  # the examples' camera (examples/K.json)
LIMIT_MB = 1
BASE_URL = "http://localhost:8000"  # a Host the server answers to


@pytest.fixture(scope="module")
def model() -> Mask2Hand:
    return Mask2Hand.from_pretrained()


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model, max_upload_mb=LIMIT_MB), base_url=BASE_URL) as test_client:
        yield test_client


def post(client, name: str, data: bytes, **fields):
    return client.post("/api/predict", files={"mask": (name, data, "application/octet-stream")}, data=fields)


@pytest.fixture(scope="module")
def victory(client) -> dict:
    response = post(client, "victory.png", (EXAMPLES / "victory.png").read_bytes(), focal=FOCAL)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def cli_victory(tmp_path_factory) -> Path:
    """What `mask2hand predict` writes for the same file and camera."""
    out = tmp_path_factory.mktemp("predict")
    assert cli.main(["predict", str(EXAMPLES / "victory.png"), "--out", str(out), "--focal", FOCAL, "--no-figure"]) == 0
    return out


# ---------------------------------------------------------------------- good answers

def test_a_good_png_answers_joints_iou_and_the_mesh(victory, model):
    prediction = victory["prediction"]
    assert np.asarray(prediction["joints"]).shape == (21, 3)
    assert np.asarray(prediction["joints_2d"]).shape == (21, 2)
    assert 0.88 < prediction["iou"] <= 1.0  # measured 0.927, as mask2hand predict
    assert prediction["source"] == "victory.png" and prediction["camera"] == "focal"
    vertices, faces = np.asarray(victory["mesh"]["vertices"]), np.asarray(victory["mesh"]["faces"])
    assert faces.shape == model.faces.shape and (faces == model.faces).all()
    assert vertices.shape == (faces.max() + 1, 3)
    assert (vertices[:, 2] > 0).all()  # in front of the camera, meters
    assert victory["skeleton"]["bones"][0] == [0, 1] and len(victory["skeleton"]["joint_colors"]) == 21
    overlay = Image.open(io.BytesIO(base64.b64decode(victory["overlay"].split(",", 1)[1])))
    assert overlay.format == "PNG" and max(overlay.size) == 512
    assert set(victory["downloads"]) == {"victory.obj", "victory.ply", "victory.glb", "victory.json"}


def _assert_same(ours, theirs, where="") -> None:
    """Equal JSON values, numbers within float tolerance."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs), where
        for key in theirs:
            _assert_same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), where
        for k, (a, b) in enumerate(zip(ours, theirs)):
            _assert_same(a, b, f"{where}[{k}]")
    elif isinstance(theirs, float):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-6), where
    else:
        assert ours == theirs, where


def test_the_answer_is_the_json_mask2hand_predict_writes(victory, cli_victory):
    written = json.loads((cli_victory / "victory.json").read_text())
    ours = dict(victory["prediction"])
    assert Path(written.pop("source")).name == ours.pop("source")
    _assert_same(ours, written)
    np.testing.assert_allclose(victory["prediction"]["joints"], written["joints"], atol=1e-6)


def _mesh_arrays(data: bytes, file_type: str) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    mesh = trimesh.load(io.BytesIO(data), file_type=file_type, process=False, force="mesh")
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_the_downloads_are_the_files_mask2hand_predict_writes(client, victory, cli_victory):
    for name in ("victory.obj", "victory.ply", "victory.glb"):
        response = client.get(victory["downloads"][name])
        assert response.status_code == 200
        assert f'filename="{name}"' in response.headers["content-disposition"]
        kind = name[-3:]
        ours, theirs = _mesh_arrays(response.content, kind), _mesh_arrays((cli_victory / name).read_bytes(), kind)
        np.testing.assert_allclose(ours[0], theirs[0], atol=1e-6)
        assert (ours[1] == theirs[1]).all()
    response = client.get(victory["downloads"]["victory.json"])
    assert response.text == json_text(victory["prediction"])


def test_an_array_upload_is_read_like_a_npy_file(client, victory):
    """A .npy upload is recognised by its content whatever it is called, and read as the CLI reads it."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(Image.open(EXAMPLES / "victory.png")) > 127)
    response = post(client, "mask.bin", buffer.getvalue(), focal=FOCAL)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(response.json()["prediction"]["joints"], victory["prediction"]["joints"], atol=1e-6)
    assert set(response.json()["downloads"]) == {"mask.obj", "mask.ply", "mask.glb", "mask.json"}


def test_side_and_K_reach_the_model(client, model):
    K = [[492.8, 0, 112], [0, 492.8, 112], [0, 0, 1]]
    response = post(client, "point.png", (EXAMPLES / "point.png").read_bytes(), K=json.dumps(K), side="left")
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = model.predict(str(EXAMPLES / "point.png"), K=np.asarray(K), side="left")
    assert answer["prediction"]["side"] == "left" and answer["prediction"]["camera"] == "K"
    np.testing.assert_allclose(answer["prediction"]["joints"], expected.joints, atol=1e-6)
    assert (np.asarray(answer["mesh"]["faces"]) == expected.faces).all()  # a left hand's winding is reversed


@pytest.mark.slow
def test_fit_and_hypotheses_reach_the_model(client):
    response = post(client, "point.png", (EXAMPLES / "point.png").read_bytes(), fit="on", hypotheses="1")
    assert response.status_code == 200, response.text
    answer = response.json()
    prediction = answer["prediction"]
    assert prediction["fit_steps"] > 0 and prediction["iou"] >= prediction["iou_before_fit"]
    assert len(prediction["hypotheses"]) == len(answer["mesh"]["hypotheses"]) == 1
    assert np.asarray(answer["mesh"]["hypotheses"][0]).shape == np.asarray(answer["mesh"]["vertices"]).shape
    assert "point_hyp1.obj" in answer["downloads"]


def test_the_side_can_be_left_to_the_model(client):
    response = post(client, "ok.png", (EXAMPLES / "ok.png").read_bytes(), focal=FOCAL, side="auto")
    assert response.status_code == 200, response.text
    prediction = response.json()["prediction"]
    assert prediction["side"] in ("right", "left") and 0 <= prediction["side_margin"] <= 1
    assert isinstance(prediction["side_ambiguous"], bool)


def test_two_concurrent_requests_both_answer_correctly(client, model, victory):
    barrier = Barrier(2)

    def send(name: str):
        data = (EXAMPLES / name).read_bytes()
        barrier.wait()
        return post(client, name, data, focal=FOCAL)

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(send, ["victory.png", "fist.png"]))
    assert [r.status_code for r in responses] == [200, 200]
    again, fist = (r.json() for r in responses)
    np.testing.assert_allclose(again["prediction"]["joints"], victory["prediction"]["joints"], atol=1e-6)
    expected = model.predict(str(EXAMPLES / "fist.png"), focal=float(FOCAL))
    np.testing.assert_allclose(fist["prediction"]["joints"], expected.joints, atol=1e-5)
    assert again["id"] != fist["id"] and fist["prediction"]["source"] == "fist.png"


# ---------------------------------------------------------------------- bad uploads: the CLI's messages

def _bad_files(folder: Path) -> list[str]:
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "nohand.png")
    (folder / "notimage.png").write_text("hello, I am a text file\n")
    (folder / "empty.png").write_bytes(b"")
    data = (EXAMPLES / "victory.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    Image.new("1", (MAX_IMAGE_SIDE + 1, 8)).save(folder / "huge.png")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "photo.png")
    np.save(folder / "cube.npy", np.zeros((4, 4, 4)))
    return ["nohand.png", "notimage.png", "empty.png", "truncated.png", "huge.png", "photo.png", "cube.npy"]


@pytest.fixture(scope="module")
def cli_errors(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Bad files and, per file, the message `mask2hand predict` prints after 'error: <path>: '."""
    folder = tmp_path_factory.mktemp("bad")
    names = _bad_files(folder)
    proc = subprocess.run([sys.executable, "-m", "mask2hand", "predict", *(str(folder / n) for n in names),
                           "--out", str(folder / "out"), "--no-figure"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    messages = {}
    for line in proc.stderr.splitlines():
        found = re.match(r"mask2hand predict: error: (.+?): (.*)$", line)
        if found:
            messages[Path(found[1]).name] = found[2]
    assert set(messages) == set(names), proc.stderr
    return folder, messages


def test_a_bad_upload_answers_400_with_the_clis_message(client, cli_errors):
    folder, messages = cli_errors
    for name, message in messages.items():
        response = post(client, name, (folder / name).read_bytes())
        assert response.status_code == 400, (name, response.text)
        assert response.json() == {"error": f"{name}: {message}"}


def test_a_mask_without_a_hand_answers_400(client):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((120, 160), np.uint8)).save(buffer, format="PNG")
    response = post(client, "black.png", buffer.getvalue())
    assert response.status_code == 400
    assert response.json()["error"].startswith("black.png: ") and "empty" in response.json()["error"]


@pytest.mark.parametrize("fields, cli_args, phrase", [
    ({"focal": "-5"}, ["--focal", "-5"], None),
    ({"hypotheses": "99"}, ["--hypotheses", "99"], None),
    ({"focal": "abc"}, None, "focal length must be a positive number"),
    ({"focal": "100", "K": "[[100, 0, 50], [0, 100, 50], [0, 0, 1]]"}, None, "either K or a focal length"),
    ({"K": "[[1, 2], [3, 4]]"}, None, "K must be (3,3)"),
    ({"K": "not json"}, None, "K is not valid JSON"),
    ({"K": "[[0, 0, 50], [0, 100, 50], [0, 0, 1]]"}, None, "positive focal lengths"),
    ({"focal": "1e9"}, None, "field of view"),  # checked against the image: prefixed by its name
    ({"side": "up"}, None, "side must be 'right', 'left', 'auto'"),
    ({"fit": "maybe"}, None, "fit must be true or false"),
    ({"hypotheses": "two"}, None, "hypotheses must be a whole number"),
])
def test_a_bad_option_answers_400_with_one_line(client, capsys, tmp_path, fields, cli_args, phrase):
    response = post(client, "victory.png", (EXAMPLES / "victory.png").read_bytes(), **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "\n" not in error and "Traceback" not in error
    if cli_args is not None:  # an option the CLI has: the same message
        assert cli.main(["predict", str(EXAMPLES / "victory.png"), "--out", str(tmp_path), *cli_args]) == 2
        assert capsys.readouterr().err.strip() == f"mask2hand predict: error: {error}"
    else:
        assert phrase in error


def test_a_request_without_a_mask_answers_400(client):
    response = client.post("/api/predict", data={"focal": "500"})
    assert response.status_code == 400 and "mask" in response.json()["error"]


def test_an_oversized_upload_answers_413(client):
    response = post(client, "big.png", b"\0" * (LIMIT_MB * 2 ** 20 + 1))
    assert response.status_code == 413
    assert "limit of 1 MB" in response.json()["error"]


def test_an_oversized_upload_without_a_length_answers_413(client):
    """A chunked body (no Content-Length) is counted as it arrives."""
    boundary = "mask2handtest"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"mask\"; filename=\"big.png\"\r\n"
               "Content-Type: image/png\r\n\r\n").encode()
        for _ in range(LIMIT_MB * 4):
            yield b"\0" * 2 ** 18
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post("/api/predict", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_a_fault_of_the_server_answers_500_without_a_traceback():
    class Broken:
        """A model whose prediction fails as a bug would."""

        def predict_each(self, *args, **kwargs):
            raise RuntimeError("a bug")

    with TestClient(create_app(Broken()), base_url=BASE_URL, raise_server_exceptions=False) as broken:
        response = post(broken, "victory.png", (EXAMPLES / "victory.png").read_bytes())
    assert response.status_code == 500
    assert response.json() == {"error": "internal error of the server (RuntimeError); see the server's log"}


# ---------------------------------------------------------------------- the other endpoints

def test_health_and_models(client, model):
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model"] == model.model_identity
    assert health["input_size"] == model.input_size and health["max_upload_mb"] == LIMIT_MB
    models = client.get("/api/models").json()
    assert models["models"] == list_models() and models["loaded"]["weights"] == "default (shipped)"


def test_unknown_answers_and_paths_answer_404_in_json(client, victory):
    assert client.get("/api/answers/nope/victory.obj").status_code == 404
    response = client.get(victory["downloads"]["victory.obj"].replace("victory.obj", "other.obj"))
    assert response.status_code == 404 and "victory.obj" in response.json()["error"]
    assert client.get("/no/such/page").json() == {"error": "no such page or endpoint"}


def test_the_pages_and_their_files_load_nothing_from_the_network(client):
    pages = [client.get("/"), client.get("/live")]
    for page in pages:
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
    names = sorted(p.name for p in static_folder().iterdir())
    assert names == ["app.js", "index.html", "live.html", "live.js", "style.css", "viewer.js"]
    for name in names:
        text = client.get(f"/static/{name}").text
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert any(re.search(r"[\"']/static/" + re.escape(name), page.text) for page in pages) or name.endswith(".html")


def test_the_placeholder_hints_flow_as_paragraphs():
    """A grid or flex box would make each text run and the <b> of a hint its own item, one row each
    (the browser test checks the line itself where Chromium is installed)."""
    css = (static_folder() / "style.css").read_text()
    rule = re.search(r"\.placeholder\s*\{([^}]*)\}", css).group(1)
    assert not re.search(r"display\s*:\s*(inline-)?(grid|flex)", rule)
    assert "<b>" in (static_folder() / "index.html").read_text()


# ---------------------------------------------------------------------- the command

def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # importing it raises ImportError
    assert cli.main(["serve"]) == 2
    assert capsys.readouterr().err.strip() == ("mask2hand serve: error: mask2hand serve needs FastAPI and uvicorn: "
                                               "pip install 'mask2hand[serve]'")


def test_serve_on_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert cli.main(["serve", "--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mask2hand serve: error: cannot listen on 127.0.0.1:") and "\n" not in err


@pytest.mark.slow
def test_the_command_serves_the_api():
    proc = subprocess.Popen([sys.executable, "-m", "mask2hand", "serve", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://[\d.]+:\d+/", line)
        assert url, line
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(url[0] + "api/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------- a server that stays reachable

class Held:
    """A model whose predictions wait until `release` is set, then fail as a bad input does."""

    model_identity = {"weights": "held"}
    hand_identity = {"name": "open"}
    runner = None
    input_size = 128

    def __init__(self):
        self.release = Event()

    def predict_each(self, *args, **kwargs):
        self.release.wait(60)
        raise Mask2HandError("released")


def test_health_the_page_and_its_files_do_not_wait_behind_predictions():
    held, data = Held(), (EXAMPLES / "victory.png").read_bytes()
    with TestClient(create_app(held), base_url=BASE_URL) as client, ThreadPoolExecutor(46) as pool:
        predictions = [pool.submit(post, client, "victory.png", data) for _ in range(45)]  # more than the 40 threads
        time.sleep(1.0)
        cheap = pool.submit(lambda: [client.get(path).status_code for path in ("/api/health", "/", "/static/app.js")])
        try:
            assert cheap.result(timeout=10) == [200, 200, 200]
        finally:
            held.release.set()
        assert {future.result(timeout=60).status_code for future in predictions} <= {400, 503}


def test_a_full_prediction_queue_answers_503_with_retry_after():
    held, data = Held(), (EXAMPLES / "victory.png").read_bytes()
    with TestClient(create_app(held, max_queue=2), base_url=BASE_URL) as client, ThreadPoolExecutor(3) as pool:
        admitted = [pool.submit(post, client, "victory.png", data) for _ in range(3)]  # one running, two waiting
        try:
            deadline = time.monotonic() + 10
            while client.get("/api/health").json()["queued"] < 3:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            refused = post(client, "victory.png", data)
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "busy" in refused.json()["error"] and "--max-queue" in refused.json()["error"]
        finally:
            held.release.set()
        assert [future.result(timeout=30).json() for future in admitted] == [{"error": "released"}] * 3
        assert client.get("/api/health").json()["queued"] == 0


@pytest.mark.parametrize("host, status", [
    ("localhost:8000", 200), ("127.0.0.1", 200), ("[::1]:8000", 200), ("LocalHost", 200), ("10.1.2.3:8000", 200),
    ("evil.example", 400), ("evil.example:8000", 400), ("localhost.evil.example", 400), ("localhost:9999", 400),
])
def test_only_the_servers_own_host_names_are_answered(host, status):
    """127.0.0.1, localhost, [::1] and the --host address, without a port or with the server's: a name
    resolved to this machine by someone else's DNS (rebinding) is refused."""
    with TestClient(create_app(Held(), host="10.1.2.3"), base_url=BASE_URL) as client:
        response = client.get("/api/health", headers={"host": host})
    assert response.status_code == status, response.text
    if status == 400:
        assert "host names" in response.json()["error"] and "\n" not in response.json()["error"]


def test_a_cross_origin_post_is_refused_with_403(client):
    data = (EXAMPLES / "victory.png").read_bytes()
    files = {"mask": ("victory.png", data, "image/png")}
    foreign = client.post("/api/predict", files=files, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
    assert client.post("/api/predict", files=files, headers={"origin": "null"}).status_code == 403
    assert client.post("/api/predict", files=files, headers={"origin": BASE_URL}).status_code == 200


@pytest.mark.parametrize("fields", [
    {"K": "[" * 1000 + "]" * 1000},
    {"K": "1" * 5000},
    {"K": json.dumps([[int("1" + "0" * 400), 0, 112], [0, 490, 112], [0, 0, 1]])},
    {"hypotheses": "1" * 5000},
    {"focal": "1" * 5000},
], ids=["K-nested-1000", "K-5000-digits", "K-int-beyond-float", "hypotheses-5000-digits", "focal-5000-digits"])
def test_a_field_python_cannot_parse_answers_400_with_one_line(client, fields):
    response = post(client, "victory.png", (EXAMPLES / "victory.png").read_bytes(), **fields)
    assert response.status_code == 400, response.text
    assert "\n" not in response.json()["error"] and "internal error" not in response.json()["error"]


@pytest.mark.parametrize("content_type, body", [
    ("multipart/form-data; boundary=x", b"garbage"),
    ("multipart/form-data", b"--x\r\n"),
    ("multipart/form-data; boundary=x", b"".join(b'--x\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % k
                                                 for k in range(1200)) + b"--x--\r\n"),
    ("application/x-www-form-urlencoded", b"K=%ZZ&focal=%"),
    ("application/json", b"{" * 1000),
], ids=["no-boundary-found", "no-boundary", "1200-fields", "bad-percent-encoding", "json"])
def test_a_malformed_request_answers_400(client, content_type, body):
    response = client.post("/api/predict", content=body, headers={"content-type": content_type})
    assert response.status_code == 400, response.text
    assert "\n" not in response.json()["error"]


@pytest.mark.parametrize("option", [
    ["--max-upload-mb", "inf"], ["--max-upload-mb", "1e400"], ["--max-upload-mb", "nan"], ["--max-upload-mb", "-1"],
    ["--read-timeout", "inf"], ["--read-timeout", "0"], ["--max-queue", "-1"],
], ids=lambda option: " ".join(option))
def test_serve_with_an_impossible_limit_is_one_line(capsys, option):
    assert cli.main(["serve", "--port", "0", *option]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mask2hand serve: error: {option[0]} must be") and "\n" not in err


READ_TIMEOUT = 2.0
FILE_LIMIT = 256


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`mask2hand serve --read-timeout 2` on a free port under an open-file limit of 256:
    ((host, port), base URL, the path of its log)."""
    import httpx

    log = tmp_path_factory.mktemp("served") / "server.log"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "mask2hand", "serve", "--port", "0", "--read-timeout",
                                 str(READ_TIMEOUT)], stdout=subprocess.PIPE, stderr=err, text=True,
                                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, hard)))
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://([\d.]+):(\d+)/", line)
        assert found, line + log.read_text()
        url = found[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "api/health", timeout=5).raise_for_status()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        yield (found[1], int(found[2])), url, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes `sock` within `within` seconds (reading and dropping what it sends)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.1)[0]:
            try:
                if sock.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
    return False


@pytest.mark.slow
def test_a_request_that_stops_halfway_is_closed_after_the_read_timeout(served):
    address, _, log = served
    with socket.create_connection(address) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        assert _closed_by_server(sock, READ_TIMEOUT + 10)
        assert time.monotonic() - started >= READ_TIMEOUT - 0.5
    with socket.create_connection(address) as sock:  # an upload that stops halfway: closed, no traceback
        sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
                     b"boundary=x\r\nContent-Length: 100000\r\n\r\n--x\r\nContent-Disposition: form-data; "
                     b'name="mask"; filename="a.png"\r\n\r\n' + b"\0" * 1000)
        assert _closed_by_server(sock, READ_TIMEOUT + 10)
    time.sleep(0.5)
    assert "Traceback" not in log.read_text()


@pytest.mark.slow
def test_a_live_socket_outlasts_the_read_timeout(served):
    """The read deadline is for HTTP requests: a WebSocket of the live mode idle for longer than
    --read-timeout still answers its next frame."""
    import struct

    pytest.importorskip("wsproto")
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage

    (host, port), _, _ = served
    client = WSConnection(ConnectionType.CLIENT)

    def next_message(sock: socket.socket) -> dict:
        text = ""
        while True:
            data = sock.recv(1 << 20)
            assert data, "the server closed the live socket"
            client.receive_data(data)
            for event in client.events():
                if isinstance(event, TextMessage):
                    text += event.data
                    if event.message_finished:
                        return json.loads(text)
                else:
                    assert isinstance(event, AcceptConnection), event

    mask = np.zeros((64, 64), np.uint8)
    mask[16:56, 24:40] = 1
    with socket.create_connection((host, port), timeout=60) as sock:
        sock.sendall(client.send(Request(host=f"{host}:{port}", target="/api/live")))
        assert next_message(sock)["type"] == "hello"
        time.sleep(READ_TIMEOUT + 1)
        sock.sendall(client.send(BytesMessage(data=struct.pack("<HHd", 64, 64, 0.0) + mask.tobytes())))
        assert next_message(sock)["type"] in ("answer", "error")


@pytest.mark.slow
def test_a_request_trickled_byte_by_byte_is_closed_after_the_read_timeout(served):
    address, _, _ = served
    request = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
    started = time.monotonic()
    with socket.create_connection(address) as sock:
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if _closed_by_server(sock, 0.25) or time.monotonic() - started > READ_TIMEOUT + 10:
                break
    assert READ_TIMEOUT - 0.5 <= time.monotonic() - started < READ_TIMEOUT + 5


@pytest.mark.slow
def test_idle_half_requests_beyond_the_file_limit_leave_the_server_reachable(served):
    """More half-requests than the server may open files: it stays reachable and its log stays short."""
    import httpx

    address, url, log = served
    lines_before = len(log.read_text().splitlines())
    sockets = []
    try:
        for _ in range(FILE_LIMIT + 100):
            sock = socket.create_connection(address, timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\n")
            sockets.append(sock)
        started = time.monotonic()
        health = httpx.get(url + "api/health", timeout=10)
        assert health.status_code == 200 and time.monotonic() - started < 5
    finally:
        for sock in sockets:
            sock.close()
    text = log.read_text()
    assert "Too many open files" not in text and "Traceback" not in text
    assert len(text.splitlines()) - lines_before < 10, text

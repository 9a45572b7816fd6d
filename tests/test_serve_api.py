"""`mask2hand serve`'s HTTP API on the shipped model: answers, the CLI's JSON and messages, limits, concurrency."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

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
from mask2hand.export.files import json_text  # noqa: E402
from mask2hand.image.files import MAX_IMAGE_SIDE  # noqa: E402
from mask2hand.nn.pretrained import list_models  # noqa: E402
from mask2hand.serve.app import create_app, static_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
FOCAL = "492.8"  # the examples' camera (examples/K.json)
LIMIT_MB = 1


@pytest.fixture(scope="module")
def model() -> Mask2Hand:
    return Mask2Hand.from_pretrained()


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model, max_upload_mb=LIMIT_MB)) as test_client:
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
    assert 0.5 < prediction["iou"] <= 1.0
    assert prediction["source"] == "victory.png" and prediction["camera"] == "focal"
    vertices, faces = np.asarray(victory["mesh"]["vertices"]), np.asarray(victory["mesh"]["faces"])
    assert faces.shape == model.faces.shape and (faces == model.faces).all()
    assert vertices.shape == (faces.max() + 1, 3)
    assert (vertices[:, 2] > 0).all()  # in front of the camera, meters
    assert victory["skeleton"]["bones"][0] == [0, 1] and len(victory["skeleton"]["joint_colors"]) == 21
    overlay = Image.open(io.BytesIO(base64.b64decode(victory["overlay"].split(",", 1)[1])))
    assert overlay.format == "PNG" and max(overlay.size) == 512
    assert set(victory["downloads"]) == {"victory.obj", "victory.ply", "victory.json"}


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

    mesh = trimesh.load(io.BytesIO(data), file_type=file_type, process=False)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def test_the_downloads_are_the_files_mask2hand_predict_writes(client, victory, cli_victory):
    for name in ("victory.obj", "victory.ply"):
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
    assert set(response.json()["downloads"]) == {"mask.obj", "mask.ply", "mask.json"}


def test_side_and_K_reach_the_model(client, model):
    K = [[492.8, 0, 112], [0, 492.8, 112], [0, 0, 1]]
    response = post(client, "point.png", (EXAMPLES / "point.png").read_bytes(), K=json.dumps(K), side="left")
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = model.predict(str(EXAMPLES / "point.png"), K=np.asarray(K), side="left")
    assert answer["prediction"]["side"] == "left" and answer["prediction"]["camera"] == "K"
    np.testing.assert_allclose(answer["prediction"]["joints"], expected.joints, atol=1e-6)
    assert (np.asarray(answer["mesh"]["faces"]) == expected.faces).all()  # a left hand's winding is reversed


def test_fit_and_hypotheses_reach_the_model(client):
    response = post(client, "point.png", (EXAMPLES / "point.png").read_bytes(), fit="on", hypotheses="1")
    assert response.status_code == 200, response.text
    answer = response.json()
    prediction = answer["prediction"]
    assert prediction["fit_steps"] > 0 and prediction["iou"] >= prediction["iou_before_fit"]
    assert len(prediction["hypotheses"]) == len(answer["mesh"]["hypotheses"]) == 1
    assert np.asarray(answer["mesh"]["hypotheses"][0]).shape == np.asarray(answer["mesh"]["vertices"]).shape
    assert "point_hyp1.obj" in answer["downloads"]


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
    ({"side": "up"}, None, "side must be 'right' or 'left'"),
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

        def prepare(self, *args, **kwargs):
            return None

        def predict_prepared(self, *args, **kwargs):
            raise RuntimeError("a bug")

    with TestClient(create_app(Broken()), raise_server_exceptions=False) as broken:
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


def test_the_page_and_its_files_load_nothing_from_the_network(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    names = sorted(p.name for p in static_folder().iterdir())
    assert names == ["app.js", "index.html", "style.css", "viewer.js"]
    for name in names:
        text = client.get(f"/static/{name}").text
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), name
        assert re.search(r"[\"']/static/" + re.escape(name), page.text) or name == "index.html"


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

"""The live mode of `mask2hand serve` over its WebSocket: frames in, smoothed hands out, bad frames
answered with one line while the socket and the server go on, and the handshake's Host and Origin rules."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # newer Starlette asks for httpx2 but still works with httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from mask2hand import Mask2Hand  # noqa: E402
from mask2hand.hand import load_hand_model  # noqa: E402
from mask2hand.serve.app import create_app  # noqa: E402
from mask2hand.serve.live import HEADER, MAX_LIVE_SOCKETS  # noqa: E402
from mask2hand.testing.scenes import synthetic_sequence  # noqa: E402

BASE_URL = "http://localhost:8000"
LIVE_URL = "ws://localhost:8000/api/live"
SIDE = 96


@pytest.fixture(scope="module")
def model() -> Mask2Hand:
    return Mask2Hand.from_pretrained(runtime="onnx")


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model), base_url=BASE_URL) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def masks():
    masks, _, K = synthetic_sequence(load_hand_model("open"), num_frames=6, image_size=(SIDE, SIDE), seed=0)
    assert K[0, 0] == K[1, 1] and np.allclose(K[:2, 2], SIDE / 2)  # a camera the focal setting describes
    return masks.astype(np.uint8), float(K[0, 0])


def frame(mask: np.ndarray, taken: float) -> bytes:
    return HEADER.pack(mask.shape[1], mask.shape[0], taken) + (mask > 0).astype(np.uint8).tobytes()


def test_frames_are_answered_in_order_with_the_stream_s_smoothed_hands(client, model, masks):
    masks, focal = masks
    with client.websocket_connect(LIVE_URL) as socket:
        hello = socket.receive_json()
        assert hello["type"] == "hello" and np.array_equal(hello["faces"], model.faces)
        assert len(hello["bones"]) == 20 and len(hello["joint_colors"]) == 21
        socket.send_text(f'{{"focal": {focal}}}')
        assert socket.receive_json()["type"] == "settings"
        answers = []
        for t, mask in enumerate(masks):
            socket.send_bytes(frame(mask, t / 30.0))
            answers.append(socket.receive_json())
    assert [a["type"] for a in answers] == ["answer"] * len(masks)
    assert [a["frame"] for a in answers] == [1, 2, 3, 4, 5, 6]
    stream = model.stream(fps=30.0, focal=focal)  # smoothed with the One Euro defaults, as the server does
    for t, (mask, answer) in enumerate(zip(masks, answers)):
        expected = stream.push(mask * 255, timestamp=t / 30.0)
        assert np.allclose(answer["joints"], expected.joints, atol=2e-6)
        assert np.asarray(answer["vertices"]).shape == expected.vertices.shape
        assert answer["iou"] == pytest.approx(expected.iou, abs=1e-4)


def test_bad_frames_and_settings_get_one_line_and_the_socket_goes_on(client, masks):
    masks, _ = masks
    bad = [b"short", HEADER.pack(0, 10, 0.0), HEADER.pack(4000, 10, 0.0) + bytes(40000),
           HEADER.pack(SIDE, SIDE, 0.0) + bytes(10), frame(np.zeros((SIDE, SIDE), np.uint8), 0.0)]
    with client.websocket_connect(LIVE_URL) as socket:
        socket.receive_json()
        for message in bad:
            socket.send_bytes(message)
            reply = socket.receive_json()
            assert reply["type"] == "error" and "\n" not in reply["error"] and reply["error"], reply
        assert "empty" in reply["error"]
        for text in ("not json", '{"side": "up"}', '{"focal": -3}', '{"focal": "x"}', '{"colour": 1}', "[1]"):
            socket.send_text(text)
            reply = socket.receive_json()
            assert reply["type"] == "error" and "\n" not in reply["error"], (text, reply)
        socket.send_text('{"side": "left", "focal": 200, "smoothing": false}')
        assert socket.receive_json() == {"type": "settings", "side": "left", "focal": 200.0, "smoothing": False}
        socket.send_bytes(frame(masks[0][:, ::-1], 0.0))
        answer = socket.receive_json()
    assert answer["type"] == "answer" and np.asarray(answer["joints"]).shape == (21, 3)
    assert client.get("/api/health").json()["status"] == "ok"


def test_the_handshake_keeps_the_host_and_origin_rules(model):
    with TestClient(create_app(model), base_url=BASE_URL) as client:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect(LIVE_URL, headers={"origin": "http://evil.example"}) as socket:
                socket.receive_json()
        with TestClient(create_app(model), base_url="http://rebound.example:8000") as foreign:
            with pytest.raises(WebSocketDisconnect):
                with foreign.websocket_connect("ws://rebound.example:8000/api/live") as socket:
                    socket.receive_json()
        with client.websocket_connect(LIVE_URL, headers={"origin": BASE_URL}) as socket:
            assert socket.receive_json()["type"] == "hello"


def test_live_sockets_are_limited(model):
    from contextlib import ExitStack

    with TestClient(create_app(model), base_url=BASE_URL) as client, ExitStack() as stack:
        opened = [stack.enter_context(client.websocket_connect(LIVE_URL)) for _ in range(MAX_LIVE_SOCKETS)]
        for socket in opened:
            assert socket.receive_json()["type"] == "hello"
        assert client.get("/api/health").json()["live_sessions"] == MAX_LIVE_SOCKETS
        with pytest.raises(WebSocketDisconnect) as closed:
            with client.websocket_connect(LIVE_URL) as extra:
                extra.receive_json()
        assert closed.value.code == 1013


def test_an_idle_live_socket_is_closed(model, monkeypatch):
    from mask2hand.serve import live

    monkeypatch.setattr(live, "LIVE_IDLE_S", 0.5)
    with TestClient(create_app(model), base_url=BASE_URL) as client:
        with client.websocket_connect(LIVE_URL) as socket:
            assert socket.receive_json()["type"] == "hello"
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.receive_json()
        assert closed.value.code == 1000 and "no frame" in closed.value.reason
        assert client.get("/api/health").json()["live_sessions"] == 0

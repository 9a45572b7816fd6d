"""The live page of `mask2hand serve` in a real browser with a fake camera: answers arrive and the 3-D hand moves.

Headless Chromium (Selenium 4) with a fake camera playing a Y4M video the test makes from the
synthetic sequence (mask2hand.testing.scenes: an open hand easing into a half-closed, turned pose,
exact silhouettes, white on black), on the app served by uvicorn with the shipped ONNX model. The
page makes the silhouette by brightness, sends it over the WebSocket and draws the answers.
Skipped when /usr/bin/chromium or /usr/bin/chromedriver is missing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium")
pytest.importorskip("wsproto")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import serve_screenshot as browser  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (browser.CHROMIUM.is_file() and browser.CHROMEDRIVER.is_file()),
                                 reason=f"needs {browser.CHROMIUM} and {browser.CHROMEDRIVER} (Debian: apt-get "
                                        "install chromium chromium-driver)")]

SIDE = 224
FRAMES = 24


def camera_video(path: Path) -> Path:
    """The synthetic sequence forth and back at 224 x 224, the default camera's focal (2.2 x side)."""
    from mask2hand.hand import load_hand_model
    from mask2hand.testing.scenes import synthetic_sequence

    masks, _, _ = synthetic_sequence(load_hand_model("open"), num_frames=FRAMES, image_size=(SIDE, SIDE),
                                     focal=2.2 * SIDE, seed=0)
    frames = np.concatenate([masks, masks[::-1]]).astype(np.uint8) * 255
    return browser.write_y4m(path, frames, fps=15)


def answers(driver) -> int:
    return int(driver.execute_script("return window.liveStats.answers"))


def wait_for_answers(driver, count: int, timeout: float = 180) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: answers(d) >= count)


def test_the_camera_s_hand_is_answered_live_and_the_3d_view_moves(tmp_path):
    from selenium.webdriver.common.by import By

    from mask2hand import Mask2Hand
    from mask2hand.serve.app import create_app

    video = camera_video(tmp_path / "camera.y4m")
    app = create_app(Mask2Hand.from_pretrained(runtime="onnx"))
    with browser.serving(app) as url, browser.chromium(flags=browser.fake_camera_flags(video)) as driver:
        driver.get(url + "/live")
        background = browser.viewer_pixels(driver)
        driver.find_element(By.ID, "start").click()
        wait_for_answers(driver, 3)
        browser.wait_for_render(driver)
        first = browser.viewer_pixels(driver)
        seen = answers(driver)
        wait_for_answers(driver, seen + 8)
        time.sleep(0.2)  # the redraw is on the next animation frame
        later = browser.viewer_pixels(driver)
        stats = driver.execute_script("return window.liveStats")
        hand_fraction = driver.execute_script(
            "const c = document.getElementById('mask'), d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
            "for (let i = 0; i < d.length; i += 4) n += d[i] > 127; return n / (c.width * c.height);")
        shown = {name: driver.find_element(By.ID, name).text for name in ("fps", "latency", "iou", "frames")}
        assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
        browser.save_page(driver, tmp_path / "live_page.png")

    assert stats["errors"] == 0 and stats["answers"] >= seen + 8
    assert 0.02 < hand_fraction < 0.5  # the silhouette preview shows a hand-sized white region
    colours = len(np.unique(first.reshape(-1, 3), axis=0))
    covered = np.any(first != background[0, 0], axis=-1).mean()
    assert colours > 50 and 0.02 < covered < 0.9, (colours, covered)  # a shaded hand is drawn
    assert np.any(np.abs(later.astype(int) - first.astype(int)) > 30), "the 3-D hand must move with the camera"
    assert shown["fps"].endswith("fps") and shown["latency"].endswith("ms") and float(shown["iou"]) > 0.3
    assert all(latency > 0 for latency in stats["latencies"])

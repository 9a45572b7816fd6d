"""docs/images/serve_page.png: the page of `mask2hand serve` after a prediction from a drawn hand.

Starts the app on a free port of 127.0.0.1 (uvicorn, in a thread), opens it in headless Chromium
(Selenium 4, /usr/bin/chromium and /usr/bin/chromedriver), draws an open hand on the canvas with
the mouse, presses Predict, waits for the answer and saves the whole page. The functions here
(the server thread, the browser, the drawing, reading the WebGL canvas back) are also what
tests/test_serve_browser.py drives the page with.

Run: python tools/serve_screenshot.py [--out docs/images/serve_page.png] [--checkpoint W]
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--hide-scrollbars",
                # WebGL without a GPU: ANGLE on SwiftShader, Chromium's software renderer (Chromium 150
                # still falls back to it unasked; newer ones want it named and allowed)
                "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader")

# An open right hand, palm to the camera (so its thumb is on the image's right), fingers up, in
# fractions of the canvas (x right, y down), shaped after examples/open_palm.png:
# (brush size in pixels of a 320 px canvas, [points of one stroke])
OPEN_HAND = (
    (44, [(0.36, 0.55), (0.51, 0.55), (0.51, 0.63), (0.36, 0.63), (0.38, 0.71), (0.49, 0.71), (0.46, 0.77),
          (0.42, 0.77)]),                                                                         # palm
    (16, [(0.31, 0.50), (0.25, 0.36)]),                                                           # little
    (17, [(0.37, 0.48), (0.34, 0.26)]),                                                           # ring
    (19, [(0.455, 0.48), (0.445, 0.19)]),                                                         # middle
    (18, [(0.545, 0.48), (0.555, 0.26)]),                                                         # index
    (20, [(0.56, 0.66), (0.66, 0.58), (0.74, 0.51)]),                                             # thumb
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(app) -> Iterator[str]:
    """Serve a FastAPI app with uvicorn in a background thread on a free port of 127.0.0.1; yields
    its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def fake_camera_flags(video: Path) -> tuple[str, ...]:
    """Chromium flags that give the page a camera playing `video` (a .y4m file, looped) and grant it
    without asking."""
    return ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={video}")


def write_y4m(path: Path, frames: np.ndarray, fps: int = 30) -> Path:
    """A Y4M video (YUV 4:2:0, what Chromium's fake camera plays) of grey frames (T,H,W) uint8, H and W
    even: a text header, then per frame the line FRAME, the H x W luma plane and two flat chroma planes."""
    count, height, width = frames.shape
    chroma = bytes([128]) * (height // 2) * (width // 2) * 2  # no colour
    with open(path, "wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            file.write(b"FRAME\n" + np.ascontiguousarray(frame, dtype=np.uint8).tobytes() + chroma)
    return path


@contextmanager
def chromium(width: int = 1280, height: int = 900, flags: tuple[str, ...] = ()) -> Iterator:
    """Headless Chromium driven by Selenium (yields a selenium.webdriver.Chrome), with a throw-away
    profile; `flags` are added to CHROME_FLAGS."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="mask2hand-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in CHROME_FLAGS + tuple(flags):
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield driver
        finally:
            driver.quit()


def open_page(driver, url: str, timeout: float = 30) -> None:
    """Load the page and wait until its script has set the canvas up."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && document.getElementById('source-line').textContent !== ''"))


def draw_strokes(driver, strokes=OPEN_HAND) -> None:
    """Paint strokes on the drawing canvas with the mouse: per stroke, the brush size (pixels of a
    320 px canvas) and its points in fractions of the canvas."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_element(By.ID, "draw")
    width, height, pixels = driver.execute_script(
        "const c = arguments[0], r = c.getBoundingClientRect(); return [r.width, r.height, c.width];", canvas)
    for size, points in strokes:
        driver.execute_script("const s = document.getElementById('brush-size'); s.value = arguments[0];"
                              "s.dispatchEvent(new Event('input'));", round(size * pixels / 320))
        # Selenium 4 offsets are from the element's centre, in CSS pixels
        offsets = [(round((x - 0.5) * width), round((y - 0.5) * height)) for x, y in points]
        chain = ActionChains(driver, duration=20).move_to_element_with_offset(canvas, *offsets[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(offsets, offsets[1:]):
            chain.move_by_offset(x1 - x0, y1 - y0)
        chain.release().perform()


def predict_and_wait(driver, timeout: float = 180) -> dict:
    """Press Predict and wait for the answer; returns the JSON panel's answer (the per-input JSON),
    or raises AssertionError with the page's error line."""
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    summary_before = driver.execute_script("return document.getElementById('json').textContent")
    driver.find_element(By.ID, "predict").click()
    WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(
        "const e = document.getElementById('error'), j = document.getElementById('json');"
        "return document.body.dataset.busy === 'false' && (!e.hidden || j.textContent !== arguments[0]);",
        summary_before))
    error = driver.find_element(By.ID, "error")
    if error.is_displayed():
        raise AssertionError(f"the page shows an error: {error.text}")
    return json.loads(driver.execute_script("return document.getElementById('json').textContent"))


def wait_for_render(driver, timeout: float = 30) -> None:
    """Wait until the 3-D view has drawn the mesh (viewer.js counts its frames on the canvas)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(lambda d: int(d.execute_script(
        "return document.getElementById('viewer').dataset.frames || 0")) > 0)


def viewer_pixels(driver) -> np.ndarray:
    """The 3-D view's pixels (H,W,3) uint8, read back from its WebGL canvas (its drawing buffer is
    preserved, so toDataURL gives what was drawn)."""
    from PIL import Image

    url = driver.execute_script("return document.getElementById('viewer').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def turn_view(driver, dx: int, dy: int) -> None:
    """Drag on the 3-D view by (dx, dy) CSS pixels, as a user turns the hand."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    ActionChains(driver, duration=50).click_and_hold(driver.find_element(By.ID, "viewer")).move_by_offset(
        dx, dy).release().perform()
    time.sleep(0.2)  # the redraw is on the next animation frame


def save_page(driver, out: Path) -> Path:
    """A screenshot of the whole page (the window is made as tall as the page first)."""
    width = driver.execute_script("return window.outerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 140)  # the window's frame is not part of the page
    time.sleep(0.3)  # a relayout and the viewer's redraw at the new size
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "serve_page.png")
    parser.add_argument("--checkpoint", help="weights (default: the shipped model)")
    args = parser.parse_args()

    from mask2hand import Mask2Hand
    from mask2hand.serve.app import create_app

    app = create_app(Mask2Hand.from_pretrained(args.checkpoint))
    with serving(app) as url, chromium() as driver:
        open_page(driver, url)
        draw_strokes(driver)
        answer = predict_and_wait(driver)
        wait_for_render(driver)
        turn_view(driver, 24, 10)  # a little, so that the view shows the hand's depth
        print(f"IoU {answer['iou']:.3f}; wrote {save_page(driver, args.out)}")


if __name__ == "__main__":
    main()

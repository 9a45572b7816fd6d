"""The page of `mask2hand serve` in a real browser: draw a hand with the mouse, predict, see the 3-D view.

Headless Chromium through Selenium 4, on the app served by uvicorn on a free port of 127.0.0.1;
the browser helpers are tools/serve_screenshot.py's (the README screenshot is made the same way).
Skipped when /usr/bin/chromium or /usr/bin/chromedriver is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(REPO / "tools"))

import serve_screenshot as browser  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (browser.CHROMIUM.is_file() and browser.CHROMEDRIVER.is_file()),
                                 reason=f"needs {browser.CHROMIUM} and {browser.CHROMEDRIVER} (Debian: apt-get install "
                                        "chromium chromium-driver)")]


@pytest.fixture(scope="module")
def page():
    from mask2hand import Mask2Hand
    from mask2hand.serve.app import create_app

    with browser.serving(create_app(Mask2Hand.from_pretrained())) as url, browser.chromium() as driver:
        browser.open_page(driver, url)
        yield driver


def test_a_drawn_hand_is_predicted_and_shown_in_3d(page, tmp_path):
    from selenium.webdriver.common.by import By

    assert page.execute_script("return document.getElementById('viewer-placeholder').hidden") is False
    # the bold word of the hint stays on the line of the words before it
    word_top, bold_top = page.execute_script(
        "const p = document.getElementById('overlay-placeholder'), b = p.querySelector('b'), t = b.previousSibling,"
        " r = document.createRange(); r.setStart(t, t.length - 6); r.setEnd(t, t.length - 1);"
        "return [r.getBoundingClientRect().top, b.getBoundingClientRect().top];")
    assert abs(word_top - bold_top) < 2
    background = browser.viewer_pixels(page)
    assert len(np.unique(background.reshape(-1, 3), axis=0)) == 1  # nothing drawn yet: one colour

    browser.draw_strokes(page)
    drawn = page.execute_script(
        "const c = document.getElementById('draw'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 127; return n / (c.width * c.height);")
    assert 0.05 < drawn < 0.5  # a hand-sized blob of white

    answer = browser.predict_and_wait(page)
    assert len(answer["joints"]) == 21 and all(len(j) == 3 for j in answer["joints"])
    assert answer["source"] == "drawing.png" and answer["image_size"] == [320, 320]
    assert answer["iou"] > 0.75  # the model found a hand in the drawing (measured 0.829)
    stats = page.find_element(By.ID, "stats").text
    assert "21" in stats and f"{answer['iou']:.3f}" in stats
    links = {a.text: a.get_attribute("href") for a in page.find_elements(By.CSS_SELECTOR, "#downloads a")}
    assert set(links) == {"OBJ", "PLY", "GLB", "JSON"} and links["OBJ"].endswith("/drawing.obj")
    assert page.find_element(By.ID, "overlay").get_attribute("src").startswith("data:image/png;base64,")

    browser.wait_for_render(page)
    pixels = browser.viewer_pixels(page)
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    covered = np.any(pixels != background[0, 0], axis=-1).mean()
    assert colours > 50 and 0.05 < covered < 0.9, (colours, covered)  # a shaded hand, not a blank or a flat fill

    before = pixels
    browser.turn_view(page, 60, 0)
    assert np.any(browser.viewer_pixels(page) != before), "dragging must turn the hand"

    shot = browser.save_page(page, tmp_path / "serve_page.png")
    assert shot.stat().st_size > 10_000


def test_an_uploaded_mask_is_sent_as_it_is(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page.find_element(By.ID, "upload").send_keys(str(EXAMPLES / "victory.png"))
    WebDriverWait(page, 10).until(lambda d: "victory.png" in d.find_element(By.ID, "source-line").text)
    answer = browser.predict_and_wait(page)
    assert answer["source"] == "victory.png" and answer["image_size"] == [224, 224] and answer["iou"] > 0.88
    # measured 0.927, what mask2hand predict answers for the file


def test_a_bad_drawing_shows_the_servers_error(page):
    from selenium.webdriver.common.by import By

    page.find_element(By.ID, "clear").click()
    with pytest.raises(AssertionError, match=r"the page shows an error: drawing\.png: the mask is empty"):
        browser.predict_and_wait(page)
    assert page.find_element(By.ID, "summary").is_displayed()  # the last answer stays on the page

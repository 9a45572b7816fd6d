"""The documentation site (mkdocs.yml): the pages of docs/ and the API reference generated from the
docstrings build with warnings as errors, so a broken link between pages or an API entry whose
object moved fails the suite. Skipped where MkDocs is not installed (the test extra installs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings_handlers.python")

pytestmark = pytest.mark.slow  # a full MkDocs build in a subprocess

REPO = Path(__file__).resolve().parents[1]


def test_the_docs_site_builds_strictly_with_the_api_reference(tmp_path):
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    assert "from_pretrained" in api and "load_hand_model" in api and "fit_from_prior" in api
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert all((site / Path(name).stem / "index.html").is_file() for name in pages - {"index.md"})

"""The Python API sleeps idle OpenMP threads as the CLI does (OMP_WAIT_POLICY=PASSIVE)."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = "import os, mask2hand; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy_after_import(env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_importing_the_package_sets_the_passive_wait_policy():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_after_import(env) == "PASSIVE"


def test_a_policy_the_user_set_wins():
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    assert _policy_after_import(env) == "ACTIVE"

"""SIGTERM handled like Ctrl-C, so that `finally` blocks run (temporary files removed,
checkpoints saved) when a scheduler or `kill` stops a command."""

from __future__ import annotations

import signal
import threading


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def sigterm_as_keyboard_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread (no-op elsewhere: only the main
    thread may set signal handlers). Background jobs of a non-interactive shell ignore SIGINT,
    so TERM is the way to stop them."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)

"""The package version (one place: the package metadata reads it from here)."""

__version__ = "0.1.0"

JSON_SCHEMA_VERSION = 2
"""The layout of every JSON file mask2hand writes (predictions, summaries, evaluations, run
summaries; docs/JSON.md), written as its `schema_version`: raised when a key changes meaning or
goes away, not when one is added."""

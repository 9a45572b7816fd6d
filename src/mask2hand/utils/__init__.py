"""Helpers every layer may use: declarative argument checks, atomic file writes and hashes,
dataclasses built from YAML/JSON dictionaries. They import nothing else of mask2hand."""

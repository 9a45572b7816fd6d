"""Subcommands of the `mask2hand` CLI, one module each (see mask2hand.cli)."""

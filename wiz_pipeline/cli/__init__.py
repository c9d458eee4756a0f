"""The ``wiz-pipeline`` command and what it runs for a person: the demo, the dev sandbox, the checkpoints,
the ledger and the settings table. The top of the stack: it may import every package, and none imports it."""

from wiz_pipeline.cli.commands import build_parser, main

__all__ = ["build_parser", "main"]

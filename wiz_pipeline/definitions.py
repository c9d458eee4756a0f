"""The code location Dagster loads (``-m wiz_pipeline.definitions``, workspace.yaml, the Dockerfile and
the Helm values): the definitions themselves are built in ``wiz_pipeline.orchestration``."""

from wiz_pipeline.orchestration import build_definitions

# Built once, when the code location loads: the settings with defaults shape the partitions.
defs = build_definitions()

__all__ = ["defs"]

"""The one Dagster ``Definitions`` object. The assets, schedule and resources arrive with the pipeline."""

import dagster as dg

defs = dg.Definitions()

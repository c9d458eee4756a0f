"""Reading what landed: the gap report (``ledger``, given what the Dagster instance says) and SQL over
the datasets (``analytics``, also as ``wiz_pipeline.analytics``). Imports ``landing`` and ``core``;
never the client, never Dagster. ``analytics`` (DuckDB, pandas) loads only when it is used."""

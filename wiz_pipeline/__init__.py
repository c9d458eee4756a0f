"""wiz-pipeline: Wiz audit logs and issues to Parquet, orchestrated by Dagster."""

"""The Dagster asset of each data type (``window_asset``), built from its definition in ``data_types/``."""

"""One module per data type; both are thin wrappers over ``window_asset``."""

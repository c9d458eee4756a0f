"""``wiz_pipeline.analytics.connect()``: SQL over what landed, as the README and notebooks call it; the
code is in ``wiz_pipeline.readers.analytics``."""

from wiz_pipeline.readers.analytics import *  # noqa: F403
from wiz_pipeline.readers.analytics import __all__  # noqa: F401

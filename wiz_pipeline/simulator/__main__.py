"""``python -m wiz_pipeline.simulator``: the same as ``wiz-pipeline simulator``."""

import sys

from wiz_pipeline.simulator.command import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m wiz_pipeline.simulator``: the same as ``wiz-pipeline simulator``."""

import sys

from wiz_pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["simulator", *sys.argv[1:]]))

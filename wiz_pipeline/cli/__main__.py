"""``python -m wiz_pipeline.cli``: the same as ``wiz-pipeline``."""

import sys

from wiz_pipeline.cli.commands import main

if __name__ == "__main__":
    sys.exit(main())

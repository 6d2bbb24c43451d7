"""``python -m advisor.cli``: the same as the ``vram-advisor`` command."""

import sys

from advisor.cli import main

__all__: list[str] = []

if __name__ == "__main__":  # not when a worker process re-imports the main module
    sys.exit(main())

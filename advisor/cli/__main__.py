"""``python -m advisor.cli``: the same as the ``vram-advisor`` command."""

import sys

from advisor.cli import main

__all__: list[str] = []

sys.exit(main())

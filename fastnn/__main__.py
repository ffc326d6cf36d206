"""``python -m fastnn``: the ``fastnn`` command (demo, bench, info)."""
import sys

from ._cli import main

sys.exit(main())

"""``python -m fastnn.playground``: the same as ``fastnn playground``."""
import sys

from . import main

sys.exit(main(prog="python -m fastnn.playground"))

"""Moved to fastnn/_bench/bench_graphs.py (installed with fastnn; ``fastnn bench`` runs the suite).

This file keeps ``python benchmarks/bench_graphs.py`` working from a checkout, with the same flags and
outputs; imported, it is that module.
"""
import importlib.util
import sys
from pathlib import Path

_REAL = Path(__file__).resolve().parent.parent / "fastnn" / "_bench" / "bench_graphs.py"

if __name__ == "__main__":
    import runpy
    sys.argv[0] = str(_REAL)
    runpy.run_path(str(_REAL), run_name="__main__")
else:
    _spec = importlib.util.spec_from_file_location("bench_graphs", _REAL)
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    globals().update({k: v for k, v in vars(_module).items()
                      if not (k.startswith("__") and k.endswith("__"))})

"""fastnn: neural networks on Numba — jitted CPU and CUDA kernels, layers, scikit-learn estimators.

Importing fastnn is cheap: submodules load, and kernels compile, on first use.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = ("kernels", "nn", "sklearn", "testing")
_FUNCTIONS = {"save": "fastnn.io", "load": "fastnn.io", "warmup": "fastnn._kernels.warmup",
              "set_num_threads": "fastnn.kernels", "get_num_threads": "fastnn.kernels",
              "show_versions": "fastnn._info", "info": "fastnn._info"}
__all__ = list(_SUBMODULES) + list(_FUNCTIONS) + ["__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f"fastnn.{name}")
    elif name in _FUNCTIONS:
        value = getattr(importlib.import_module(_FUNCTIONS[name]), name)
    else:
        raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return __all__

"""CPU-compiled counter-based random numbers (see ``fastnn._kernels._random``)."""
from .._random import build
from ._jit import jit

random_bits, uniform_f32, uniform_f64 = build(lambda f: jit(f, inline="always"))

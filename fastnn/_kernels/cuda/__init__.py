"""numba.cuda kernels, one module per family mirroring ``fastnn._kernels.cpu``; imported lazily."""

"""Numba CPU kernels, one module per family. Functions here assume validated, C-contiguous inputs."""

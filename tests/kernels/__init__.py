"""Tests of the kernels: ``fastnn.kernels``, ``fastnn._kernels`` (CPU backend, cache, threads)."""

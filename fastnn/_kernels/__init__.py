"""Kernel implementations.

Layout: ``<family>.py`` holds the public wrappers of one family of ops (validation and dispatch,
plain Python); ``cpu/<family>.py`` holds its Numba kernels and ``cuda/<family>.py`` its numba.cuda
kernels, with the same function names and signatures. ``fastnn.kernels`` re-exports the wrappers.
"""

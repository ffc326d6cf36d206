"""Slow, obviously correct float64 NumPy references, one module per kernel family."""

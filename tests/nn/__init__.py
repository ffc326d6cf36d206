"""Tests of ``fastnn.nn``: layers, losses, optimizers, schedules, training and model files."""

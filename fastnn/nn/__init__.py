"""Layers with forward/backward, Sequential, losses, optimizers, schedules and a training loop."""
from .base import FlatBuffer, Layer, Parameter, Sequential, parameter_count

__all__ = ["FlatBuffer", "Layer", "Parameter", "Sequential", "parameter_count"]

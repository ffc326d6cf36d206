"""Batch norm's running-statistics rule, written once for both backends (PyTorch's): each
running value moves ``momentum`` of the way to the batch's, the variance unbiased by
``count / (count - 1)``. Plain arithmetic on float64 scalars or NumPy arrays; the CUDA backend
compiles ``running_stats`` as a device function. A neutral module: it imports no backend.
"""
import math


def unbias_factor(count):
    """``count / (count - 1)``: the batch variance (divided by ``count``) to the sample variance
    (infinite for a single value, which has no sample variance)."""
    return count / (count - 1) if count > 1 else math.inf


def running_stats(running_mean, running_var, batch_mean, batch_var, momentum, unbias):
    """The updated ``(running_mean, running_var)`` after one training batch."""
    keep = 1.0 - momentum
    return (keep * running_mean + momentum * batch_mean,
            keep * running_var + momentum * batch_var * unbias)

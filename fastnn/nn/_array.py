"""Backend-neutral array helpers for layers, optimizers and the training loop: NumPy arrays on the
CPU, CUDA arrays on the GPU. They are the kernel API's (``fastnn._kernels.arrayops``), named here
for the ``nn`` modules; layers touch activations only through ``fastnn.kernels`` and these.
"""
from .._kernels._device import is_cuda_array  # noqa: F401
from .._kernels.arrayops import (  # noqa: F401
    accumulate, assign, copy, count_argmax_correct, count_binary_correct, device_of, empty_like,
    fill, l2_masked, masked_axpy, masked_scale, move, put_channels, reshape, scale, sum_squares,
    take_channels, take_rows, to_device, to_host, zeros_like)
from .._kernels.arrayops import reverse_steps  # noqa: F401

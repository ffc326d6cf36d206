"""Fused optimizer steps on the GPU: in place on device buffers, equal to the CPU steps."""
import numpy as np
import pytest
from numba import cuda

import fastnn.kernels as K
from cuda_helpers import tol

pytestmark = pytest.mark.cuda


def _state(rng, dtype, n=(5, 7), k=4):
    arrays = [rng.standard_normal(n).astype(dtype) for _ in range(k)]
    arrays[-1] = np.abs(arrays[-1])
    return arrays


def _run(step, cpu, gpu, steps=3, **kw):
    for t in range(1, steps + 1):
        step(K.cpu, cpu, t)
        step(K.cuda, gpu, t)


def _check(cpu, gpu, dtype):
    for c, g in zip(cpu, gpu):
        if c is not None:
            np.testing.assert_allclose(g.copy_to_host(), c, **tol(dtype))


@pytest.mark.parametrize("decoupled,wd", [(False, 0.0), (False, 0.1), (True, 0.1)])
def test_adam(rng, dtype, decoupled, wd):
    cpu = _state(rng, dtype)
    gpu = [cuda.to_device(a) for a in cpu]
    before = cpu[0].copy()
    _run(lambda k, a, t: k.adam_step(a[0], a[1], a[2], a[3], t, lr=0.01, weight_decay=wd,
                                     decoupled=decoupled), cpu, gpu)
    _check(cpu, gpu, dtype)
    assert not np.allclose(gpu[0].copy_to_host(), before)


@pytest.mark.parametrize("momentum,dampening,nesterov", [(0.0, 0.0, False), (0.9, 0.0, True),
                                                         (0.9, 0.3, False)])
def test_sgd(rng, dtype, momentum, dampening, nesterov):
    cpu = _state(rng, dtype, k=3)
    cpu[2][:] = 0   # a fresh momentum buffer: the first step copies the gradient
    gpu = [cuda.to_device(a) for a in cpu]
    _run(lambda k, a, t: k.sgd_step(a[0], a[1], a[2], 0.1, momentum=momentum, dampening=dampening,
                                    nesterov=nesterov, weight_decay=0.01), cpu, gpu)
    _check(cpu, gpu, dtype)


def test_rmsprop_and_adagrad(rng, dtype):
    cpu = _state(rng, dtype, k=3)
    gpu = [cuda.to_device(a) for a in cpu]
    _run(lambda k, a, t: k.rmsprop_step(a[0], a[1], a[2], lr=0.01, weight_decay=0.01), cpu, gpu)
    _check(cpu, gpu, dtype)
    _run(lambda k, a, t: k.adagrad_step(a[0], a[1], a[2], t, lr=0.01, lr_decay=0.1), cpu, gpu)
    _check(cpu, gpu, dtype)


def test_host_buffers_rejected(rng):
    p = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="CUDA array"):
        K.cuda.rmsprop_step(p, np.zeros(3, np.float32), np.zeros(3, np.float32))

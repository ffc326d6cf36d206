"""Central-difference numerical gradients in float64 for checking backward kernels."""
import numpy as np


def numerical_gradient(f, x, eps=1e-6):
    """d(sum(f(x) * weights))/dx is what callers usually want: pass such an f (scalar output)."""
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f(x))
        flat[i] = old - eps
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def check_backward(forward, backward_grads, inputs, seed=0, eps=1e-6, rtol=1e-5, atol=1e-7):
    """Compare analytic gradients with central differences for a random output cotangent.

    ``forward(*inputs) -> y``; ``backward_grads(dy, *inputs) -> tuple of grads``, one per input
    (None to skip). Inputs must be float64.
    """
    rng = np.random.default_rng(seed)
    y = forward(*inputs)
    dy = rng.standard_normal(np.shape(y))
    analytic = backward_grads(dy, *inputs)
    for k, (inp, g) in enumerate(zip(inputs, analytic)):
        if g is None:
            continue

        def scalar(v, k=k):
            args = list(inputs)
            args[k] = v
            return np.sum(forward(*args) * dy)

        num = numerical_gradient(scalar, inp, eps)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol, err_msg=f"gradient of input {k}")


def check_layer_backward(layer, x, training=True, **tolerances):
    """``check_backward`` for a built layer: the gradients of its input and of every parameter
    (float64), the parameters set through their ``data`` views."""
    params = list(layer.parameters())

    def forward(x, *values):
        for p, v in zip(params, values):
            p.data[...] = v
        return layer.forward(x, training=training)

    def grads(dy, x, *values):
        forward(x, *values)
        for p in params:
            p.grad[...] = 0
        dx = layer.backward(dy)
        return (dx,) + tuple(p.grad.copy() for p in params)

    check_backward(forward, grads, [x] + [p.data.copy() for p in params], **tolerances)

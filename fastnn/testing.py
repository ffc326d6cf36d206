"""Gradient checking for layers and models: analytic backward against central differences.

``gradcheck(layer, x)`` compares, in float64, the gradients that ``backward`` computes for a random
output cotangent ``dy`` with the central differences of ``sum(forward(x) * dy)`` with respect to
the input and to every parameter.

Randomness (dropout masks, stochastic pooling draws) is frozen: before every forward, each layer's
generator ``layer._rng`` (of the layer and of every sub-layer found through ``.layers``) is replaced
with ``numpy.random.default_rng((seed, i))`` for the layer's position ``i``, so each forward draws
the same masks; the original generators are put back afterwards. Non-trainable state
(``layer.buffers()``, such as BatchNorm's running statistics) is restored before each forward and at
the end, and so are parameter values and gradients, so the check leaves the layer as it found it.
"""
import numpy as np

__all__ = ["gradcheck", "numerical_gradient"]


def _perturbed_gradient(f, a, eps):
    """Central differences of the scalar ``f()`` with respect to ``a``, perturbed in place."""
    grad = np.zeros(a.shape, dtype=np.float64)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    if a.size and not np.shares_memory(flat, a):
        raise ValueError("the array to differentiate must be contiguous (perturbed in place)")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f())
        flat[i] = old - eps
        fm = float(f())
        flat[i] = old
        gflat[i] = (fp - fm) / (2.0 * eps)
    return grad


def numerical_gradient(f, x, eps=1e-6):
    """Central-difference gradient ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` of a scalar
    function ``f`` at ``x``, in float64 (``x`` is copied, not modified)."""
    x = np.array(x, dtype=np.float64, copy=True)
    return _perturbed_gradient(lambda: f(x), x, float(eps))


def _walk(layer):
    """The layer and its sub-layers (``children()``: a Sequential's or a container's), depth
    first."""
    out = [layer]
    for sub in layer.children():
        out.extend(_walk(sub))
    return out


def _named_parameters(layer):
    """``[(label, Parameter)]``; labels carry the position of the sub-layer in a model."""
    named, seen = [], set()

    def visit(node, path):
        subs = node.children()
        if subs:
            for i, sub in enumerate(subs):
                visit(sub, f"{path}[{i}]")
            return
        for p in node.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                named.append((f"{path}{' ' if path else ''}{p.name}", p))

    visit(layer, "")
    for p in layer.parameters():  # parameters a container holds itself
        if id(p) not in seen:
            seen.add(id(p))
            named.append((p.name, p))
    return named


def _buffers(layers):
    out = []
    for layer in layers:
        get = getattr(layer, "buffers", None)
        if callable(get):
            out.extend(a for a in get().values() if a is not None)
    return out


def _compare(name, analytic, numeric, rtol, atol):
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"gradcheck: gradient of {name} has shape {analytic.shape}, "
                             f"expected {numeric.shape}")
    err = np.abs(analytic - numeric)
    bad = ~(err <= atol + rtol * np.abs(numeric))  # NaN counts as a mismatch
    if not bad.any():
        return
    rel = err / np.maximum(np.abs(numeric), np.finfo(np.float64).tiny)
    score = np.where(bad, np.where(np.isnan(err), np.inf, err), -1.0)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), err.shape))
    where = worst if len(worst) != 1 else worst[0]
    raise AssertionError(
        f"gradcheck: gradient of {name} does not match central differences: "
        f"{int(bad.sum())} of {err.size} elements outside "
        f"atol={atol:g} + rtol={rtol:g}*|numerical|; "
        f"max abs error {np.nanmax(err):.3e}, max rel error {np.nanmax(rel[bad]):.3e}; "
        f"worst at index {where}: backward {analytic[worst]:.9g}, numerical {numeric[worst]:.9g}")


def gradcheck(layer_or_model, x, eps=1e-6, rtol=1e-4, atol=1e-6, seed=0, training=False,
              check_params=True):
    """Check ``backward`` of a layer or model against float64 central differences.

    ``x`` is cast to float64 (integer codes, for a model that opens with an Embedding, stay
    integers and have no gradient to check); an unbuilt layer builds on it (float64
    parameters), a built one must have float64 parameters. ``dy`` is standard normal from ``seed``; the input gradient and, with
    ``check_params``, every parameter gradient must satisfy
    ``|backward - numerical| <= atol + rtol * |numerical|``. ``training`` is passed to ``forward``
    (batch statistics, dropout, stochastic sampling, with randomness frozen as the module docstring
    describes). Returns True; raises AssertionError naming the tensor, the error sizes and the
    worst index on a mismatch. Inputs should stay away from kinks (ReLU at 0, max-pool ties).
    """
    model = layer_or_model
    codes = np.asarray(x).dtype.kind in "iu"  # integer codes (an Embedding): no input gradient
    x = np.array(x, dtype=np.int64 if codes else np.float64, copy=True)
    layers = _walk(model)
    params = model.parameters() if model.built else []
    if any(np.dtype(p.data.dtype) != np.float64 for p in params):
        raise TypeError("gradcheck needs float64 parameters: pass an unbuilt layer (it builds on "
                        "the float64 input) or one built on float64 input")

    saved_rngs = [layer._rng for layer in layers]

    def reseed():
        for i, layer in enumerate(layers):
            layer._rng = np.random.default_rng((int(seed), i))

    def run(v):
        reseed()
        for buf, snap in zip(buffers, snapshots):
            buf[...] = snap
        return model.forward(v, training)

    try:
        if not model.built:  # build on the input so the parameters are float64
            reseed()
            if codes:
                model.build(tuple(x.shape[1:]), dtype=np.float64)
                model.built = True
            model.forward(x, training)
        params = model.parameters()
        named = _named_parameters(model)
        buffers = _buffers(_walk(model))
        snapshots = [np.array(b, copy=True) for b in buffers]
        saved_data = [np.array(p.data, copy=True) for p in params]
        saved_grad = [np.array(p.grad, copy=True) for p in params]
        try:
            y = np.asarray(run(x))
            dy = np.random.default_rng(seed).standard_normal(y.shape)
            for p in params:
                p.grad[...] = 0
            dx = np.asarray(model.backward(dy))
            grads = [np.array(p.grad, dtype=np.float64, copy=True) for p in params]

            def objective(v):
                return float(np.sum(np.asarray(run(v), dtype=np.float64) * dy))

            if not codes:
                _compare("the input", dx, numerical_gradient(objective, x, eps), rtol, atol)
            if check_params:
                for (name, p), g in zip(named, [grads[params.index(q)] for _, q in named]):
                    num = _perturbed_gradient(lambda: objective(x), p.data, float(eps))
                    _compare(f"parameter {name}", g, num, rtol, atol)
        finally:
            for p, d, g in zip(params, saved_data, saved_grad):
                p.data[...] = d
                p.grad[...] = g
            for buf, snap in zip(buffers, snapshots):
                buf[...] = snap
    finally:
        for layer, r in zip(layers, saved_rngs):
            layer._rng = r
    return True

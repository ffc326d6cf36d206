"""fastnn's CPU kernels timed against textbook NumPy and PyTorch CPU, and against targets.

Run from the repository root::

    python benchmarks/bench_kernels.py                      # full run, a few minutes on 2 cores
    python benchmarks/bench_kernels.py --only conv2d,adam   # cases whose name contains a substring
    python benchmarks/bench_kernels.py --quick              # tiny sizes, one repeat (a smoke test)

Each case runs fastnn, a NumPy reference of the textbook kind (im2col + matmul convolution,
reshape-based pooling, ``np.maximum``-style activations, NumPy Adam) and, when installed,
PyTorch CPU (``torch.nn.functional`` with autograd for forward + backward, ``torch.optim.Adam
(fused=True)``). The three run interleaved (fastnn, numpy, torch, fastnn, ...) after untimed
warm-up calls, so compile time is never timed; the median per-call time of the repeats is
reported, with ratios ``peer time / fastnn time`` (> 1: fastnn is faster), GFLOP/s for
convolution and linear layers, and GB/s for memory-bound kernels, counting the compulsory bytes:
every input read once and every output written once. A large array copy (256 MB, read + write)
measures the memory-bandwidth ceiling those GB/s are compared with. Before timing, each case
compares the outputs with PyTorch (NumPy without it) and records the largest relative error.

Results go to ``--out`` (default ``benchmarks/results/kernels.json``) with the machine, thread
counts, library versions and ``/proc/loadavg`` before and after. Numbers are only meaningful on an
otherwise idle machine: check the load average (printed) first.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

DEFAULT_OUT = _common.RESULTS / "kernels.json"
F32 = np.float32


def _dims(shape):
    return "(" + ",".join(str(d) for d in shape) + ")"


def _rng():
    return np.random.default_rng(0)


def _randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape, dtype=F32) * F32(scale)).astype(F32)


# --------------------------------------------------------------------------------------------
# NumPy references (the textbook way)

def np_conv2d(x, w, b, pad):
    """Stride-1 convolution by im2col + one matrix product; returns ``(y, col)``."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    ho, wo = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    xt = xp.transpose(1, 0, 2, 3)
    col = np.empty((c, kh, kw, n, ho, wo), x.dtype)
    for i in range(kh):
        for j in range(kw):
            col[:, i, j] = xt[:, :, i:i + ho, j:j + wo]
    col = col.reshape(c * kh * kw, n * ho * wo)
    y = w.reshape(co, -1) @ col
    y += b[:, None]
    return np.ascontiguousarray(y.reshape(co, n, ho, wo).transpose(1, 0, 2, 3)), col


def np_conv2d_backward(dy, x_shape, w, col, pad):
    """``(dx, dw, db)`` from the forward's im2col matrix; dx by col2im (scatter-add)."""
    n, c, h, wd = x_shape
    co, _, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    dy2 = dy.transpose(1, 0, 2, 3).reshape(co, -1)
    db = dy2.sum(axis=1)
    dw = (dy2 @ col.T).reshape(w.shape)
    dcol = (w.reshape(co, -1).T @ dy2).reshape(c, kh, kw, n, ho, wo)
    dxp = np.zeros((c, n, h + 2 * pad, wd + 2 * pad), dy.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + ho, j:j + wo] += dcol[:, i, j]
    dx = np.ascontiguousarray(dxp[:, :, pad:pad + h, pad:pad + wd].transpose(1, 0, 2, 3))
    return dx, dw, db


def _windows(x):
    """(N, C, H, W) -> (N, C, H/2, W/2, 4): the 2x2 windows of stride 2."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        n, c, h // 2, w // 2, 4)


def _unwindows(win, x_shape):
    n, c, h, w = x_shape
    return win.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x_shape)


def np_max_pool2d(x):
    """2x2 stride-2 max pooling by reshape + argmax: ``(y, window_argmax)``."""
    win = _windows(x)
    arg = win.argmax(axis=-1)
    return np.take_along_axis(win, arg[..., None], axis=-1)[..., 0], arg


def np_max_pool2d_backward(dy, arg, x_shape):
    n, c, h, w = x_shape
    dwin = np.zeros((n, c, h // 2, w // 2, 4), dy.dtype)
    np.put_along_axis(dwin, arg[..., None], dy[..., None], axis=-1)
    return _unwindows(dwin, x_shape)


def np_avg_pool2d(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def np_avg_pool2d_backward(dy, x_shape):
    n, c, h, w = x_shape
    q = (dy * dy.dtype.type(0.25))[:, :, :, None, :, None]
    return np.broadcast_to(q, (n, c, h // 2, 2, w // 2, 2)).reshape(x_shape)


def np_gelu(x):
    from scipy.special import erf
    return F32(0.5) * x * (F32(1) + erf(x * F32(1 / math.sqrt(2))))


NP_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, F32(0)),
    "sigmoid": lambda x: F32(1) / (F32(1) + np.exp(-x)),
    "tanh": np.tanh,
    "gelu": np_gelu,
    "leaky_relu": lambda x: np.where(x > 0, x, F32(0.01) * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
}


def np_adam(p, g, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    """``torch.optim.Adam``'s update in NumPy array operations, in place."""
    m *= F32(beta1)
    m += F32(1 - beta1) * g
    v *= F32(beta2)
    v += F32(1 - beta2) * (g * g)
    denom = np.sqrt(v) / F32(math.sqrt(1 - beta2 ** t)) + F32(eps)
    p -= F32(lr / (1 - beta1 ** t)) * m / denom
    return p


def np_softmax_cross_entropy(logits, target):
    n = logits.shape[0]
    rows = np.arange(n)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = -(z[rows, target] - np.log(s[:, 0])).mean()
    d = e / s
    d[rows, target] -= 1
    d /= F32(n)
    return loss, d


def np_batch_norm(x, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    """Training-mode batch norm over (N, H, W); returns ``(y, (xhat, invstd))``."""
    axes = (0, 2, 3)
    m = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    xc = x - mean[:, None, None]
    var = (xc * xc).mean(axis=axes)
    invstd = F32(1) / np.sqrt(var + F32(eps))
    xhat = xc * invstd[:, None, None]
    y = xhat * gamma[:, None, None] + beta[:, None, None]
    running_mean *= F32(1 - momentum)
    running_mean += F32(momentum) * mean
    running_var *= F32(1 - momentum)
    running_var += F32(momentum * m / (m - 1)) * var
    return y, (xhat, invstd)


def np_batch_norm_backward(dy, gamma, cache):
    xhat, invstd = cache
    axes = (0, 2, 3)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    m = F32(dy.size // dy.shape[1])
    dx = (gamma * invstd)[:, None, None] * (
        dy - (dbeta / m)[:, None, None] - xhat * (dgamma / m)[:, None, None])
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------------------------
# cases: each builder returns the implementations and the work they do

class Case:
    """One benchmark: ``build(quick, torch)`` -> dict with ``shape``, ``impls`` (label ->
    callable returning the outputs, in the same order for every label), ``flops`` or ``bytes``,
    and ``compare`` (False where outputs are random)."""

    def __init__(self, name, group, build, target=None):
        self.name, self.group, self.build, self.target = name, group, build, target


def _conv_case(name, n, c, co, hw, k, pad, quick_dims, backward, target):
    def build(quick, torch):
        import fastnn.kernels as K
        nn, cc, oo, ss = quick_dims if quick else (n, c, co, hw)
        rng = _rng()
        x = _randn(rng, nn, cc, ss, ss)
        w = _randn(rng, oo, cc, k, k, scale=1 / math.sqrt(cc * k * k))
        b = _randn(rng, oo)
        so = ss + 2 * pad - k + 1
        dy = _randn(rng, nn, oo, so, so)
        flops = 2 * nn * oo * so * so * cc * k * k
        impls = {}
        if backward:
            def fastnn_fn():
                y = K.conv2d(x, w, b, padding=pad)
                return (y,) + tuple(K.conv2d_backward(dy, x, w, padding=pad))

            def numpy_fn():
                y, col = np_conv2d(x, w, b, pad)
                return (y,) + np_conv2d_backward(dy, x.shape, w, col, pad)
            impls = {"fastnn": fastnn_fn, "numpy": numpy_fn}
            if torch:
                F = torch.nn.functional
                xt, wt, bt = (torch.from_numpy(a).requires_grad_(True) for a in (x, w, b))
                dyt = torch.from_numpy(dy)

                def torch_fn():
                    y = F.conv2d(xt, wt, bt, padding=pad)
                    return (y.detach(),) + torch.autograd.grad(y, (xt, wt, bt), dyt)
                impls["torch"] = torch_fn
            flops *= 3
        else:
            impls = {"fastnn": lambda: K.conv2d(x, w, b, padding=pad),
                     "numpy": lambda: np_conv2d(x, w, b, pad)[0]}
            if torch:
                F = torch.nn.functional
                xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

                def torch_fn():
                    with torch.no_grad():
                        return F.conv2d(xt, wt, bt, padding=pad)
                impls["torch"] = torch_fn
        shape = f"x({nn},{cc},{ss},{ss}) w({oo},{cc},{k},{k}) p{pad}"
        return {"shape": shape, "impls": impls, "flops": flops}
    kind = "fwd+bwd" if backward else "fwd"
    return Case(f"conv2d {kind} {name}", "conv", build, target if backward else None)


def _pool_case(kind, backward, target):
    def build(quick, torch):
        import fastnn.kernels as K
        shape = (2, 3, 8, 8) if quick else (64, 32, 32, 32)
        rng = _rng()
        x = _randn(rng, *shape)
        n = x.size
        dy = _randn(rng, shape[0], shape[1], shape[2] // 2, shape[3] // 2)
        F = torch.nn.functional if torch else None
        xt = torch.from_numpy(x).requires_grad_(backward) if torch else None
        dyt = torch.from_numpy(dy) if torch else None
        if kind == "max":
            # y float32 (n/4) and indices int64 (n/4): 4n + n + 2n bytes forward;
            # backward reads dy and indices (n + 2n) and writes dx (4n)
            nbytes = 7 * n + (7 * n if backward else 0)
            if backward:
                def fastnn_fn():
                    y, idx = K.max_pool2d(x, 2)
                    return y, K.max_pool2d_backward(dy, idx, x.shape)

                def numpy_fn():
                    y, arg = np_max_pool2d(x)
                    return y, np_max_pool2d_backward(dy, arg, x.shape)

                def torch_fn():
                    y = F.max_pool2d(xt, 2, 2)
                    return y.detach(), torch.autograd.grad(y, xt, dyt)[0]
            else:
                def fastnn_fn():
                    return K.max_pool2d(x, 2)[0]

                def numpy_fn():
                    return np_max_pool2d(x)[0]

                def torch_fn():
                    with torch.no_grad():
                        return F.max_pool2d(xt, 2, 2, return_indices=True)[0]
        else:
            nbytes = 5 * n + (5 * n if backward else 0)
            if backward:
                def fastnn_fn():
                    y = K.avg_pool2d(x, 2)
                    return y, K.avg_pool2d_backward(dy, x.shape, 2)

                def numpy_fn():
                    return np_avg_pool2d(x), np_avg_pool2d_backward(dy, x.shape)

                def torch_fn():
                    y = F.avg_pool2d(xt, 2, 2)
                    return y.detach(), torch.autograd.grad(y, xt, dyt)[0]
            else:
                def fastnn_fn():
                    return K.avg_pool2d(x, 2)

                def numpy_fn():
                    return np_avg_pool2d(x)

                def torch_fn():
                    with torch.no_grad():
                        return F.avg_pool2d(xt, 2, 2)
        impls = {"fastnn": fastnn_fn, "numpy": numpy_fn}
        if torch:
            impls["torch"] = torch_fn
        return {"shape": f"x{_dims(shape)} 2x2 s2", "impls": impls, "bytes": nbytes}
    return Case(f"{kind}_pool2d {'fwd+bwd' if backward else 'fwd'}", "pool", build,
                target if backward else None)


def _adam_case():
    def build(quick, torch):
        import fastnn.kernels as K
        n = 10_000 if quick else 10_000_000
        rng = _rng()
        p0, g = _randn(rng, n), _randn(rng, n)
        state = {}

        def fresh():
            return p0.copy(), np.zeros(n, F32), np.zeros(n, F32)
        p1, m1, v1 = fresh()
        p2, m2, v2 = fresh()
        state["fastnn"] = state["numpy"] = 0

        def fastnn_fn():
            state["fastnn"] += 1
            K.adam_step(p1, g, m1, v1, state["fastnn"], lr=1e-3)
            return p1

        def numpy_fn():
            state["numpy"] += 1
            return np_adam(p2, g, m2, v2, state["numpy"], lr=1e-3)
        impls = {"fastnn": fastnn_fn, "numpy": numpy_fn}
        if torch:
            param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
            param.grad = torch.from_numpy(g.copy())
            opt = torch.optim.Adam([param], lr=1e-3, fused=True)

            def torch_fn():
                opt.step()
                return param.detach()
            impls["torch"] = torch_fn
        return {"shape": f"{n} float32 params", "impls": impls, "bytes": 28 * n}
    return Case("adam_step", "optim", build, ("torch", 1.0))


def _activation_case(name, backward=False):
    def build(quick, torch):
        import fastnn.kernels as K
        n = 1 << 12 if quick else 1 << 24
        rng = _rng()
        x = _randn(rng, n)
        xt = torch.from_numpy(x) if torch else None
        if backward:
            dy = _randn(rng, n)
            dyt = torch.from_numpy(dy) if torch else None
            fk = getattr(K, f"{name}_backward")
            impls = {"fastnn": lambda: fk(dy, x),
                     "numpy": lambda: np.where(x > 0, dy, F32(0))}
            if torch:
                impls["torch"] = lambda: torch.ops.aten.threshold_backward(dyt, xt, 0.0)
            nbytes = 12 * n
        else:
            fk = getattr(K, name)
            impls = {"fastnn": lambda: fk(x), "numpy": lambda: NP_ACTIVATIONS[name](x)}
            if torch:
                F = torch.nn.functional
                impls["torch"] = {
                    "relu": lambda: torch.relu(xt), "sigmoid": lambda: torch.sigmoid(xt),
                    "tanh": lambda: torch.tanh(xt), "gelu": lambda: F.gelu(xt),
                    "leaky_relu": lambda: F.leaky_relu(xt, 0.01), "elu": lambda: F.elu(xt, 1.0),
                }[name]
            nbytes = 8 * n
        return {"shape": f"{n} float32", "impls": impls, "bytes": nbytes}
    return Case(f"{name}{'_backward' if backward else ''}", "activation", build, ("ceiling", 0.8))


def _cross_entropy_case():
    def build(quick, torch):
        import fastnn.kernels as K
        n, c = (4, 10) if quick else (256, 1000)
        rng = _rng()
        logits = _randn(rng, n, c, scale=3.0)
        target = rng.integers(0, c, n).astype(np.int64)
        impls = {"fastnn": lambda: K.softmax_cross_entropy(logits, target),
                 "numpy": lambda: np_softmax_cross_entropy(logits, target)}
        if torch:
            F = torch.nn.functional
            lt = torch.from_numpy(logits).requires_grad_(True)
            tt = torch.from_numpy(target)

            def torch_fn():
                loss = F.cross_entropy(lt, tt)
                return loss.detach(), torch.autograd.grad(loss, lt)[0]
            impls["torch"] = torch_fn
        # logits read, dlogits written, labels read
        return {"shape": f"logits({n},{c})", "impls": impls, "bytes": 8 * n * c + 8 * n}
    return Case("softmax_cross_entropy loss+grad", "loss", build)


def _batch_norm_case():
    def build(quick, torch):
        import fastnn.kernels as K
        shape = (2, 3, 4, 4) if quick else (64, 64, 32, 32)
        c = shape[1]
        rng = _rng()
        x, dy = _randn(rng, *shape), _randn(rng, *shape)
        gamma, beta = _randn(rng, c) + F32(1), _randn(rng, c)
        stats = [np.zeros(c, F32), np.ones(c, F32), np.zeros(c, F32), np.ones(c, F32)]

        def fastnn_fn():
            y, cache = K.batch_norm(x, gamma, beta, stats[0], stats[1], training=True)
            return (y,) + tuple(K.batch_norm_backward(dy, cache))

        def numpy_fn():
            y, cache = np_batch_norm(x, gamma, beta, stats[2], stats[3])
            return (y,) + np_batch_norm_backward(dy, gamma, cache)
        impls = {"fastnn": fastnn_fn, "numpy": numpy_fn}
        if torch:
            F = torch.nn.functional
            xt, gt, bt = (torch.from_numpy(a).requires_grad_(True) for a in (x, gamma, beta))
            rm, rv = torch.zeros(c), torch.ones(c)
            dyt = torch.from_numpy(dy)

            def torch_fn():
                y = F.batch_norm(xt, rm, rv, gt, bt, training=True, momentum=0.1, eps=1e-5)
                return (y.detach(),) + torch.autograd.grad(y, (xt, gt, bt), dyt)
            impls["torch"] = torch_fn
        # x read, y written, dy read, dx written
        return {"shape": f"x{_dims(shape)}", "impls": impls, "bytes": 16 * x.size}
    return Case("batch_norm fwd+bwd", "norm", build)


def _dropout_case():
    def build(quick, torch):
        import fastnn.kernels as K
        n = 1 << 12 if quick else 1 << 24
        p = 0.5
        rng = _rng()
        x, dy = _randn(rng, n), _randn(rng, n)
        seed = [0]

        def fastnn_fn():
            seed[0] += 1
            y, mask = K.dropout(x, p, seed[0])
            return y, K.dropout_backward(dy, mask, p)

        def numpy_fn():
            mask = rng.random(n, dtype=F32) >= F32(p)
            scale = F32(1 / (1 - p))
            return x * mask * scale, dy * mask * scale
        impls = {"fastnn": fastnn_fn, "numpy": numpy_fn}
        if torch:
            F = torch.nn.functional
            xt = torch.from_numpy(x).requires_grad_(True)
            dyt = torch.from_numpy(dy)

            def torch_fn():
                y = F.dropout(xt, p, training=True)
                return y.detach(), torch.autograd.grad(y, xt, dyt)[0]
            impls["torch"] = torch_fn
        # x read, y and a 1-byte mask written; dy and the mask read, dx written
        return {"shape": f"{n} float32 p={p}", "impls": impls, "bytes": 18 * n,
                "compare": False}
    return Case("dropout fwd+bwd", "dropout", build)


def _linear_case(backward, size="", dims=(256, 1024, 1024), target=None):
    """``K.linear`` called as a user calls it (no ``cpu_work()`` around it): the thread pools
    are as the user left them, as they are for NumPy and PyTorch."""
    def build(quick, torch):
        import fastnn.kernels as K
        n, i, o = (4, 8, 8) if quick else dims
        rng = _rng()
        x, w, b = _randn(rng, n, i), _randn(rng, o, i, scale=1 / math.sqrt(i)), _randn(rng, o)
        dy = _randn(rng, n, o)
        if backward:
            def fastnn_fn():
                return (K.linear(x, w, b),) + tuple(K.linear_backward(dy, x, w))

            def numpy_fn():
                return x @ w.T + b, dy @ w, dy.T @ x, dy.sum(axis=0)
        else:
            def fastnn_fn():
                return K.linear(x, w, b)

            def numpy_fn():
                return x @ w.T + b
        impls = {"fastnn": fastnn_fn, "numpy": numpy_fn}
        if torch:
            F = torch.nn.functional
            xt, wt, bt = (torch.from_numpy(a).requires_grad_(backward) for a in (x, w, b))
            dyt = torch.from_numpy(dy)
            if backward:
                def torch_fn():
                    y = F.linear(xt, wt, bt)
                    return (y.detach(),) + torch.autograd.grad(y, (xt, wt, bt), dyt)
            else:
                def torch_fn():
                    with torch.no_grad():
                        return F.linear(xt, wt, bt)
            impls["torch"] = torch_fn
        flops = 2 * n * i * o * (3 if backward else 1)
        return {"shape": f"x({n},{i}) w({o},{i})", "impls": impls, "flops": flops}
    return Case(f"linear {'fwd+bwd' if backward else 'fwd'}{size}", "linear", build, target)


def cases():
    """Every benchmark case, in run order."""
    conv = [("lenet-c1", 64, 1, 6, 28, 5, 2, (2, 1, 6, 12), ("torch", 1.5)),
            ("lenet-c2", 64, 6, 16, 14, 5, 0, (2, 6, 16, 12), ("torch", 1.5)),
            ("64ch-3x3", 32, 64, 64, 32, 3, 1, (2, 8, 8, 8), ("torch", 1.0)),
            ("128ch-3x3", 16, 128, 128, 16, 3, 1, (2, 8, 8, 8), ("torch", 1.0))]
    # name, N, C_in, C_out, H = W, k, padding, quick (N, C_in, C_out, H), target (fwd+bwd)
    out = [_conv_case(*spec[:-1], backward, spec[-1]) for backward in (True, False)
           for spec in conv]
    out += [_pool_case("max", True, ("torch", 3.0)), _pool_case("max", False, None),
            _pool_case("avg", True, None), _pool_case("avg", False, None),
            _adam_case()]
    out += [_activation_case(name) for name in NP_ACTIVATIONS]
    out += [_activation_case("relu", backward=True), _cross_entropy_case(), _batch_norm_case(),
            _dropout_case(), _linear_case(False), _linear_case(True),
            # small products called directly (a user's own loop): no slower than NumPy
            _linear_case(False, " small", (64, 84, 10), ("numpy", 1.0)),
            _linear_case(True, " small", (64, 84, 10), ("numpy", 1.0)),
            _linear_case(True, " 1024x512-512", (1024, 512, 512), ("torch", 1.0))]
    return out


# --------------------------------------------------------------------------------------------
# running

def _arrays(out):
    """The outputs of one call as a list of NumPy float64 copies (torch tensors included)."""
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _arrays(o)]
    if hasattr(out, "detach"):
        out = out.detach().numpy()
    return [np.array(out, dtype=np.float64, copy=True)]


def _max_rel_err(got, ref):
    if len(got) != len(ref):
        return float("inf")
    err = 0.0
    for a, b in zip(got, ref):
        if a.shape != b.shape:
            return float("inf")
        scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-30)
        err = max(err, float(np.max(np.abs(a - b))) / scale if a.size else 0.0)
    return err


def run_case(case, args, torch, ceiling):
    spec = case.build(args.quick, torch)
    impls = spec["impls"]
    load = _common.loadavg()
    t0 = time.perf_counter()
    timings, firsts = _common.measure(impls, args.repeats, warmup=args.warmup,
                                      min_sample_s=args.min_sample, keep=_arrays)
    row = {"name": case.name, "group": case.group, "shape": spec["shape"], "loadavg_before": load,
           "impls": {k: t.as_dict() for k, t in timings.items()},
           "median_ms": {k: 1e3 * t.median for k, t in timings.items()}}
    fast = timings["fastnn"].median
    row["ratio"] = {k: t.median / fast for k, t in timings.items() if k != "fastnn"}
    if spec.get("flops"):
        row["flops"] = spec["flops"]
        row["gflop_s"] = {k: spec["flops"] / t.median / 1e9 for k, t in timings.items()}
    if spec.get("bytes"):
        row["bytes"] = spec["bytes"]
        row["gb_s"] = {k: spec["bytes"] / t.median / 1e9 for k, t in timings.items()}
        row["pct_ceiling"] = {k: 100 * v / ceiling["gb_s"] for k, v in row["gb_s"].items()}
    ref = "torch" if "torch" in firsts else "numpy"
    if spec.get("compare", True):
        row["check"] = {"reference": ref, "max_rel_err": {
            k: _max_rel_err(v, firsts[ref]) for k, v in firsts.items() if k != ref}}
    if case.target:
        peer, minimum = case.target
        value = row["pct_ceiling"]["fastnn"] / 100 if peer == "ceiling" else row["ratio"].get(peer)
        row["target"] = {"peer": peer, "min": minimum, "value": value,
                         "pass": None if value is None else bool(value >= minimum)}
    row["seconds"] = time.perf_counter() - t0
    return row


def _fmt(v, spec, width):
    return f"{v:{width}{spec}}" if v is not None and math.isfinite(v) else f"{'-':>{width}}"


HEADER = (f"{'case':<34} {'shape':<36} {'fastnn ms':>10} {'numpy ms':>10} {'torch ms':>10} "
          f"{'x numpy':>8} {'x torch':>8} {'spread':>6} {'fastnn rate':>16} {'target':>16} "
          f"{'result':>6}")


def format_row(row):
    ms, ratio = row["median_ms"], row["ratio"]
    spread = 100 * max(t["spread"] for t in row["impls"].values())
    if "gflop_s" in row:
        rate = f"{row['gflop_s']['fastnn']:8.1f} GFLOP/s"
    else:
        rate = f"{row['gb_s']['fastnn']:7.1f} GB/s {row['pct_ceiling']['fastnn']:3.0f}%"
    target, result = "", ""
    if "target" in row:
        t = row["target"]
        target = (f">= {100 * t['min']:.0f}% ceiling" if t["peer"] == "ceiling"
                  else f">= {t['min']:.1f}x {t['peer']}")
        result = {True: "PASS", False: "MISS", None: "n/a"}[t["pass"]]
    line = (f"{row['name']:<34} {row['shape']:<36} {_fmt(ms['fastnn'], '.3f', 10)} "
            f"{_fmt(ms.get('numpy'), '.3f', 10)} {_fmt(ms.get('torch'), '.3f', 10)} "
            f"{_fmt(ratio.get('numpy'), '.2f', 7)}x {_fmt(ratio.get('torch'), '.2f', 7)}x "
            f"{_fmt(spread, '.0f', 5)}% {rate:>16} {target:>16} {result:>6}")
    errs = row.get("check", {}).get("max_rel_err", {})
    bad = {k: v for k, v in errs.items() if not v <= 1e-3}
    if bad:
        line += "  (max rel. error vs " + row["check"]["reference"] + ": " + ", ".join(
            f"{k} {v:.1e}" for k, v in bad.items()) + ")"
    return line


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes and one repeat (checks that every case runs)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed rounds per case (default 7; 1 with --quick)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed calls before timing (default 2; 1 with --quick)")
    ap.add_argument("--min-sample", type=float, default=None,
                    help="seconds per timed sample; short calls repeat to fill it "
                         "(default 0.05; 0 with --quick)")
    ap.add_argument("--only", default="",
                    help="comma-separated substrings: run the cases whose name contains one")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch even when installed")
    ap.add_argument("--busy", action="store_true",
                    help="time every case beside one busy competing process")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON output (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 7
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.min_sample is None:
        args.min_sample = 0.0 if args.quick else 0.05
    if args.repeats < 1 or args.warmup < 1:
        ap.error("--repeats and --warmup must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    result = _common.run_header("kernels", argv)
    start = time.perf_counter()
    selected = cases()
    if args.only:
        subs = [s.strip().lower() for s in args.only.split(",") if s.strip()]
        selected = [c for c in selected if any(s in c.name.lower() for s in subs)]
        if not selected:
            raise SystemExit(f"--only {args.only!r} matches no case; cases: "
                             + ", ".join(c.name for c in cases()))
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: comparing with NumPy only", flush=True)
    print(f"load average before: {result['loadavg_before']}", flush=True)
    ceiling = _common.bandwidth_ceiling(8 * 2 ** 20 if args.quick else 256 * 2 ** 20,
                                        repeats=1 if args.quick else 5)
    print(f"bandwidth ceiling: {ceiling['gb_s']:.1f} GB/s (read + write; copy of "
          f"{ceiling['bytes_copied'] / 2 ** 20:.0f} MiB: numpy {ceiling['numpy_copy_gb_s']:.1f}, "
          f"numba prange {ceiling['parallel_copy_gb_s']:.1f}, numpy into a fresh array "
          f"{ceiling['alloc_copy_gb_s']:.1f} GB/s)", flush=True)
    env = _common.environment()  # after the Numba copy, so the threading layer is known
    print(_common.format_environment(env), flush=True)
    print(HEADER, flush=True)
    rows = []
    busy = _common.BusyProcess() if args.busy else None
    if busy:
        busy.__enter__()
        print("beside one busy competing process", flush=True)
    try:
        for case in selected:
            row = run_case(case, args, torch, ceiling)
            rows.append(row)
            print(format_row(row), flush=True)
    finally:
        if busy:
            busy.__exit__(None, None, None)
    targets = [r for r in rows if "target" in r]
    missed = [r["name"] for r in targets if r["target"]["pass"] is False]
    passed = sum(1 for r in targets if r["target"]["pass"])
    result.update({
        "loadavg_after": _common.loadavg(),
        "config": {"quick": args.quick, "repeats": args.repeats, "warmup": args.warmup,
                   "min_sample_s": args.min_sample, "only": args.only, "busy": args.busy,
                   "torch": torch is not None},
        "environment": env, "ceiling": ceiling, "cases": rows,
        "summary": {"cases": len(rows), "targets": len(targets), "passed": passed,
                    "missed": missed},
        "seconds": time.perf_counter() - start,
    })
    if args.quick:
        print("--quick: tiny sizes, one repeat; the figures and targets mean nothing", flush=True)
    print(f"targets: {passed} of {len(targets)} met" + (f"; missed: {', '.join(missed)}"
                                                         if missed else ""), flush=True)
    print(f"load average after: {result['loadavg_after']}; {result['seconds']:.0f} s", flush=True)
    path = _common.write_json(args.out, result)
    print(f"wrote {path}", flush=True)
    return result


if __name__ == "__main__":
    main()

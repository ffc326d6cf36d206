"""Fused losses: each returns ``(loss, gradient of the loss with respect to its first input)``.

``loss`` is a NumPy scalar of the input dtype (``np.float32`` or ``np.float64``: a 0-d value that
converts with ``float()``); the gradient has the input's shape and dtype. Without
``sample_weight`` the loss is the mean over the batch (cross entropy) or over all elements (BCE,
MSE), as ``torch.nn.functional``. With ``sample_weight`` (shape ``(N,)``, non-negative, positive
sum) each sample's loss (its mean over non-batch elements) is weighted:
``sum(w_i * l_i) / sum(w_i)``. With ``total=`` (a float64 array of shape (1,) on the input's
device) the loss is added to that running total instead, ``total[0] += factor * loss``, and
``loss`` comes back as None: a GPU training loop then reads one number per epoch.
"""
import numpy as np

from ._dispatch import CPUBackend, backend, is_cuda_array
from ._dispatch import to_host as _host
from ._validate import check_shape
from .arrayops import deliver


_HOST = CPUBackend()


def _on_device(a):
    return is_cuda_array(a) or bool(getattr(a, "__cuda_ndarray__", False))


def _float_like(be, a, name, dtype, shape):
    """``a`` as a float array of ``dtype`` and ``shape``; host numbers are cast, device arrays must
    already have the dtype."""
    if not _on_device(a):
        a = np.asarray(a)
        if a.dtype.kind in "iuf" and a.dtype != dtype:
            a = a.astype(dtype)
    a = be.float_array(a, name, dtype=dtype)
    check_shape(a, name, shape)
    return a


def _sample_weight(be, sample_weight, n, dtype):
    """The weights, checked. Host weights stay on the host, where every backend computes the row
    scales from them: a GPU loss then reads nothing back for them."""
    if sample_weight is None:
        return None
    w = _float_like(be if _on_device(sample_weight) else _HOST, sample_weight, "sample_weight",
                    dtype, (n,))
    h = _host(w)
    if not np.all(np.isfinite(h)) or np.any(h < 0):
        raise ValueError("sample_weight must hold finite, non-negative values")
    if not h.sum() > 0:
        raise ValueError("sample_weight must have a positive sum")
    return w


def _batch_input(be, x, name):
    if np.ndim(x) == 0:
        raise ValueError(f"{name} must be at least 1-D (N, ...), got a 0-d array")
    x = be.float_array(x, name)
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    return x


def softmax_cross_entropy(logits, target, sample_weight=None, *, total=None, factor=1.0,
                          check_target=True):
    """Softmax cross entropy, as ``F.cross_entropy(logits, target)`` (mean over the batch).

    ``logits`` (N, C) float; ``target`` (N,) integer class indices in ``[0, C)``. Returns
    ``(loss, dlogits)``; computed with a max shift, so large logits give no overflow or NaN.
    With ``total`` (a float64 array of shape (1,) on the logits' device) the loss is added to a
    running total instead, ``total[0] += factor * loss``, and ``(None, dlogits)`` is returned:
    on the GPU nothing is read back. ``check_target=False`` skips reading device labels back to
    check their range (the caller checked them); a label out of range then makes the loss NaN.
    Host labels are always checked.
    """
    be = backend(logits, target, sample_weight)
    logits = _batch_input(be, logits, "logits")
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {tuple(logits.shape)}")
    n, c = logits.shape
    on_host = not _on_device(target)
    target = be.int_array(target, "target", ndim=1)
    check_shape(target, "target", (n,))
    if check_target or on_host or be.name == "cpu":
        check_class_indices(target, c)
    w = _sample_weight(be, sample_weight, n, logits.dtype)
    return deliver(be.impl("loss").softmax_cross_entropy, (logits, target, w), logits, total,
                   factor)


def check_class_indices(target, n_classes):
    """Integer class labels (host or device) must lie in ``[0, n_classes)``: ValueError if not."""
    labels = _host(target)
    if labels.size == 0:
        return
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"target must hold class indices in [0, {n_classes}), got values in "
                         f"[{lo}, {hi}]")


def _elementwise(host_name, x, target, sample_weight, names, total, factor):
    be = backend(x, target, sample_weight)
    x = _batch_input(be, x, names[0])
    target = _float_like(be, target, names[1], x.dtype, x.shape)
    n = x.shape[0]
    w = _sample_weight(be, sample_weight, n, x.dtype)
    rows = (n, x.size // n)
    loss, grad = deliver(getattr(be.impl("loss"), host_name),
                         (x.reshape(rows), target.reshape(rows), w), x, total, factor)
    return loss, grad.reshape(x.shape)


def binary_cross_entropy_with_logits(logits, target, sample_weight=None, *, total=None,
                                     factor=1.0):
    """``F.binary_cross_entropy_with_logits(logits, target)`` (mean over all elements).

    ``target``: probabilities of ``logits``' shape (cast to its dtype). Returns ``(loss,
    dlogits)``; stable for any logit (``log1p(exp(-|x|))`` form). ``total``, ``factor``: as in
    ``softmax_cross_entropy``.
    """
    return _elementwise("binary_cross_entropy_with_logits", logits, target, sample_weight,
                        ("logits", "target"), total, factor)


def mse_loss(pred, target, sample_weight=None, *, total=None, factor=1.0):
    """``F.mse_loss(pred, target)`` (mean over all elements). Returns ``(loss, dpred)``;
    ``total``, ``factor``: as in ``softmax_cross_entropy``."""
    return _elementwise("mse_loss", pred, target, sample_weight, ("pred", "target"), total,
                        factor)

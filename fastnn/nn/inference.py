"""``evaluate`` (loss and metrics in inference mode) and ``predict`` (outputs in batches)."""
import numpy as np

from .. import kernels as K
from . import _array
from ._data import (_batch_to, _check_int, _codes, _float_dtype, _input_dtype, _loss_of,
                    _model_device, _on_device, _prepare, _reusing_buffers)
from .metrics import _class_count, _device_sums, _loss_options, _Metric, _metric_list


@K.cpu_bound
@_reusing_buffers
def evaluate(model, x, y, loss="cross_entropy", metrics=None, batch_size=256,
             sample_weight=None, _prepared=False, _labels_checked=False):
    """Loss and metrics of ``model`` on ``(x, y)`` in inference mode: a dict such as
    ``{"loss": 0.12, "accuracy": 0.97}`` (the loss without any L2 penalty). On a GPU the sums
    stay on the device until the end (one read), unless a metric needs the outputs on the host."""
    loss_fn = _loss_of(loss)
    batch_size = _check_int(batch_size, "batch_size", 1)
    if not _prepared:
        dtype = _float_dtype(model, x)
        x, y, sample_weight = _prepare(x, y, loss_fn, dtype, sample_weight,
                                       x_dtype=_input_dtype(model, dtype))
    metric_objs = metrics if metrics and isinstance(metrics[0], _Metric) else \
        _metric_list(metrics, loss_fn)
    for m in metric_objs:
        m.reset()
    device = _model_device(model)
    totals = _device_sums(device, loss_fn, metric_objs)
    n_classes = _class_count(model, loss_fn)
    if totals is not None and not _labels_checked and n_classes is not None \
            and not _array.is_cuda_array(y):
        K.check_class_indices(y, n_classes)  # once, on the host
        _labels_checked = True
    loss_kw = _loss_options(loss_fn, _labels_checked) if totals is not None else {}
    (x, y), _ = _on_device(device, x, y)
    n = len(x)
    total, weight = 0.0, 0.0
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        xb, yb = _batch_to(device, x[lo:hi], y[lo:hi])
        wb = None if sample_weight is None else sample_weight[lo:hi]
        out = model.forward(xb, training=False)
        w_sum = hi - lo if wb is None else float(wb.sum())
        if w_sum > 0:
            if totals is None:
                value, _ = loss_fn(out, yb) if wb is None else loss_fn(out, yb, wb)
                total += value * w_sum
            else:
                loss_fn(out, yb, wb, total=totals.loss(), factor=w_sum, **loss_kw)
            weight += w_sum
        for i, m in enumerate(metric_objs):
            m.update(out, yb, None if totals is None else totals.metric(i))
    if totals is not None:
        total, _, counts = totals.read()
        for m, count in zip(metric_objs, counts):
            m.total += count
    result = {"loss": total / weight if weight else float("nan")}
    for m in metric_objs:
        result[m.name] = m.result()
    return result


# predict(batch_size=None) sizes its batches so that the widest activation of a batch stays near
# this many bytes (the batch holds about two activations at once), within [64, 8192] rows.
PREDICT_BATCH_BYTES = 16 << 20


def _widest_activation(model, x1):
    """Elements per sample of the largest activation of ``model`` on the one-sample batch ``x1``."""
    widest = int(np.prod(x1.shape[1:], dtype=np.int64))
    for layer in getattr(model, "layers", [model]):
        x1 = layer.forward(x1, training=False)
        widest = max(widest, int(np.prod(x1.shape[1:], dtype=np.int64)))
    return widest


@K.cpu_bound
@_reusing_buffers
def predict(model, x, batch_size=None):
    """Model outputs in inference mode, computed in batches (logits for classifiers).

    Returns a NumPy array. ``batch_size=None`` picks batches whose activations take about
    ``PREDICT_BATCH_BYTES`` each (few Python round trips, bounded memory). For a model on the
    GPU, ``x`` (NumPy or CUDA) moves to the device once (per batch when it does not fit) and the
    outputs come back once.
    """
    x_dtype = _input_dtype(model, _float_dtype(model, x))
    if x_dtype.kind in "iu" and not _array.is_cuda_array(x):
        x = _codes(x, "x")  # integer codes (an Embedding first), checked once
    if batch_size is None:
        if len(x) == 0:
            raise ValueError("predict needs at least one sample")
        dtype = np.dtype(_float_dtype(model, x))
        xs = x[:1] if _array.is_cuda_array(x) else np.ascontiguousarray(x[:1], dtype=x_dtype)
        (xs,) = _batch_to(_model_device(model), xs)
        per_sample = _widest_activation(model, xs) * dtype.itemsize
        batch_size = int(min(8192, max(64, PREDICT_BATCH_BYTES // (2 * per_sample))))
    batch_size = _check_int(batch_size, "batch_size", 1)
    n = len(x)
    if n == 0:
        raise ValueError("predict needs at least one sample")
    device = _model_device(model)
    # on the CPU a NumPy x is read in place (a memory map too): each batch is converted to
    # dtype and C order as it goes, so memory follows a batch, not x
    per_batch = device == "cpu" and isinstance(x, np.ndarray)
    if not per_batch and not (_array.is_cuda_array(x) and np.dtype(x.dtype) == x_dtype
                              and device == "cuda"):
        x = np.ascontiguousarray(_array.to_host(x), dtype=x_dtype)
    (x,), _ = _on_device(device, x)
    out = None
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        xb = np.ascontiguousarray(x[lo:hi], dtype=x_dtype) if per_batch else x[lo:hi]
        (xb,) = _batch_to(device, xb)
        yb = model.forward(xb, training=False)
        if out is None:
            out = _array.empty_like(yb, (n,) + tuple(yb.shape[1:]))
        _array.assign(out[lo:hi], yb)
    return _array.to_host(out)

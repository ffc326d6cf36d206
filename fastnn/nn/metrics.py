"""The numbers ``fit`` and ``evaluate`` add up per batch: metrics (accuracy, mae, mse or one's own),
the class count and loss options of cross entropy, and ``DeviceTotals``, the one layout of the
sums that stay on a GPU until the end of an epoch or pass."""
import numpy as np

from . import _array
from . import losses as _losses


def _accuracy_counts(output, target, loss_fn, total=None):
    """Number of correct predictions (None when added to the device ``total``) and number of
    predictions in a batch (counted on its device)."""
    if isinstance(loss_fn, _losses.BinaryCrossEntropyLoss):
        return _array.count_binary_correct(output, target, total), int(output.size)
    if len(output.shape) == 2 and output.shape[1] > 1:
        return _array.count_argmax_correct(output, target, total), int(output.shape[0])
    raise ValueError("the accuracy metric needs class logits (N, C) with integer targets, "
                     "or binary cross-entropy outputs")


class _Metric:
    """A running mean of one metric over the batches of an epoch."""

    def __init__(self, name, loss_fn):
        self.loss_fn = loss_fn
        if callable(name):
            self.fn, self.name = name, getattr(name, "__name__", "metric")
        elif name in ("accuracy", "acc"):
            self.fn, self.name = None, "accuracy"
        elif name in ("mae", "mse"):
            self.fn, self.name = name, name
        else:
            raise ValueError(f"unknown metric {name!r}; expected 'accuracy', 'mae', 'mse' or a "
                             "callable metric(y_true, output) -> float")
        self.reset()

    def reset(self):
        self.total = 0.0
        self.count = 0

    def update(self, output, target, total=None):
        """Add a batch; accuracy counts go to the device ``total`` when given (the caller adds
        what it reads back to ``self.total``)."""
        if self.fn is None:
            correct, n = _accuracy_counts(output, target, self.loss_fn, total)
            self.total += 0 if correct is None else correct
            self.count += n
            return
        out = _array.to_host(output)
        t = _array.to_host(target)
        n = out.shape[0]
        if self.fn in ("mae", "mse"):
            diff = out.astype(np.float64) - t.reshape(out.shape)
            value = float(np.mean(np.abs(diff)) if self.fn == "mae" else np.mean(diff * diff))
        else:
            value = float(self.fn(t, out))
        self.total += value * n
        self.count += n

    def result(self):
        return self.total / self.count if self.count else float("nan")


def _metric_list(metrics, loss_fn):
    if metrics is None:
        metrics = ("accuracy",) if getattr(loss_fn, "classification", False) else ()
    elif isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    out = [_Metric(m, loss_fn) for m in metrics]
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must be distinct, got {names}")
    return out


def _class_count(model, loss_fn):
    """The number of classes of a cross-entropy model whose output shape is known; else None."""
    shape = getattr(model, "output_shape", None)
    if isinstance(loss_fn, _losses.CrossEntropyLoss) and shape and len(shape) == 1:
        return int(shape[0])
    return None


def _loss_options(loss_fn, labels_checked):
    """Keyword arguments of a built-in loss call whose sums stay on the device: cross entropy
    need not read checked labels back."""
    if isinstance(loss_fn, _losses.CrossEntropyLoss):
        return {"check_target": not labels_checked}
    return {}


class _DeviceTotals:
    """The sums of an epoch (training) or a pass (``evaluate``) that add up on the GPU and come
    back in one read: one float64 device array in one layout for both, [loss, sum of squared
    parameters (training only), one count per accuracy metric]."""

    _LOSS, _SQUARES, _METRICS = 0, 1, 2

    def __init__(self, device, n_metrics):
        self.array = _array.move(np.zeros(self._METRICS + n_metrics), device)

    def zero(self):
        _array.fill(self.array, 0)

    def loss(self):
        return self.array[self._LOSS:self._LOSS + 1]

    def squares(self):
        return self.array[self._SQUARES:self._SQUARES + 1]

    def metric(self, i):
        return self.array[self._METRICS + i:self._METRICS + i + 1]

    def read(self):
        """``(loss, sum of squares, [count per metric])`` as Python floats (one copy back)."""
        sums = _array.to_host(self.array)
        return (float(sums[self._LOSS]), float(sums[self._SQUARES]),
                [float(v) for v in sums[self._METRICS:]])


def _device_sums(device, loss_fn, metrics):
    """Zeroed ``_DeviceTotals`` on ``device``; None where the numbers come back per batch: on
    the CPU, with a loss of one's own or a metric computed on the host."""
    if (device == "cpu" or type(loss_fn) not in _losses.DEVICE_TOTAL
            or any(m.fn is not None for m in metrics)):
        return None
    return _DeviceTotals(device, len(metrics))

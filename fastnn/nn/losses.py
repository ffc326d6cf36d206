"""Loss functions for training: each returns the loss and its gradient with respect to the output.

``loss(output, target, sample_weight=None) -> (value, doutput)``: ``value`` is a Python float,
``doutput`` has the output's shape and dtype. Without weights the loss is the mean over the batch
(cross entropy) or over every element (BCE, MSE), as ``torch.nn.functional``; with
``sample_weight`` it is the weighted mean ``sum(w_i * loss_i) / sum(w_i)`` of the per-sample losses
(as scikit-learn). The fused kernels of ``fastnn.kernels`` compute value and gradient in one pass.

The built-in losses also take ``total=`` and ``factor=``: the loss is then added to a running
total on the output's device (``total[0] += factor * loss``) and ``(None, doutput)`` comes back,
so a GPU training loop reads one number per epoch instead of one per batch.

``l2_penalty`` adds scikit-learn's L2 term to the gradients of a flat parameter buffer.
Decoupled weight decay lives in the optimizers (``AdamW``, ``weight_decay=``).
"""
import numpy as np

from .. import kernels
from . import _array

__all__ = ["Loss", "CrossEntropyLoss", "BinaryCrossEntropyLoss", "MSELoss", "l2_penalty", "get"]


def _check_output(output):
    if not hasattr(output, "shape") or not hasattr(output, "dtype"):
        output = np.asarray(output)
    if np.dtype(output.dtype) not in (np.float32, np.float64):
        raise TypeError(f"output must be a float32 or float64 array, got dtype {output.dtype}")
    return output


class Loss:
    """Base class: ``__call__(output, target, sample_weight=None) -> (loss, doutput)``.

    ``classification`` tells ``fit`` whether accuracy is the natural default metric;
    ``prepare_target(y, dtype)`` converts user targets once, before training.
    """

    name = None
    classification = False

    def prepare_target(self, y, dtype):
        return np.ascontiguousarray(y, dtype=dtype)

    def __call__(self, output, target, sample_weight=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}()"


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy on logits ``(N, C)`` with integer class targets ``(N,)``.

    ``F.cross_entropy`` (mean over the batch), through the fused ``softmax_cross_entropy`` kernel.
    """

    name = "cross_entropy"
    classification = True

    def prepare_target(self, y, dtype):
        y = np.asarray(y)
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0):
                y = y.astype(np.int64)
            else:
                raise TypeError("cross-entropy targets must be integer class indices, "
                                f"got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"cross-entropy targets must be 1-D (N,), got shape {y.shape}")
        return np.ascontiguousarray(y, dtype=np.int64)

    def __call__(self, output, target, sample_weight=None, *, total=None, factor=1.0,
                 check_target=True):
        output = _check_output(output)
        if output.ndim != 2:
            raise ValueError(f"output must be 2-D logits (N, C), got shape {output.shape}")
        if not hasattr(target, "shape"):
            target = np.asarray(target)
        if tuple(target.shape) != tuple(output.shape[:1]):
            raise ValueError(f"target must have shape ({output.shape[0]},), got {target.shape}")
        loss, grad = kernels.softmax_cross_entropy(output, target, sample_weight, total=total,
                                                   factor=factor, check_target=check_target)
        return _value(loss), grad


class BinaryCrossEntropyLoss(Loss):
    """Sigmoid cross-entropy on logits with 0/1 (or soft) targets of the same shape (multilabel).

    ``F.binary_cross_entropy_with_logits``: mean over every element.
    """

    name = "binary_cross_entropy"
    classification = True

    def prepare_target(self, y, dtype):
        return np.ascontiguousarray(y, dtype=dtype)

    def __call__(self, output, target, sample_weight=None, *, total=None, factor=1.0):
        output = _check_output(output)
        target = _match_target(output, target)
        loss, grad = kernels.binary_cross_entropy_with_logits(output, target, sample_weight,
                                                              total=total, factor=factor)
        return _value(loss), grad


class MSELoss(Loss):
    """Mean squared error over every element (``F.mse_loss``); targets shaped like the output.

    A 1-D target for an ``(N, 1)`` output is taken as a column.
    """

    name = "mse"

    def __call__(self, output, target, sample_weight=None, *, total=None, factor=1.0):
        output = _check_output(output)
        target = _match_target(output, target)
        loss, grad = kernels.mse_loss(output, target, sample_weight, total=total, factor=factor)
        return _value(loss), grad


def _value(loss):
    return None if loss is None else float(loss)


def _match_target(output, target):
    """The target shaped like the output (a 1-D target for an (N, 1) output becomes a column)."""
    if not hasattr(target, "shape") or not hasattr(target, "reshape"):
        target = np.asarray(target)
    if len(target.shape) == len(output.shape) - 1 and output.shape[-1] == 1:
        target = target.reshape(tuple(output.shape))
    if tuple(target.shape) != tuple(output.shape):
        raise ValueError(f"target must have the output's shape {tuple(output.shape)}, "
                         f"got {tuple(target.shape)}")
    return target


# the losses whose calls take total= and factor= (a running total on the output's device)
DEVICE_TOTAL = (CrossEntropyLoss, BinaryCrossEntropyLoss, MSELoss)

_LOSSES = {
    "cross_entropy": CrossEntropyLoss, "categorical_crossentropy": CrossEntropyLoss,
    "binary_cross_entropy": BinaryCrossEntropyLoss, "binary_crossentropy": BinaryCrossEntropyLoss,
    "mse": MSELoss, "mean_squared_error": MSELoss,
}


def get(name):
    """A loss from its name ("cross_entropy", "binary_cross_entropy", "mse"), or a loss as is.

    Any callable ``f(output, target, sample_weight=None) -> (loss, doutput)`` is accepted as is.
    """
    if isinstance(name, str):
        try:
            return _LOSSES[name]()
        except KeyError:
            raise ValueError(f"unknown loss {name!r}; expected one of "
                             f"{sorted(_LOSSES)} or a Loss object") from None
    if isinstance(name, type) and issubclass(name, Loss):
        return name()
    if callable(name):
        return name
    raise TypeError(f"loss must be a name or a callable, got {name!r}")


# --- L2 regularisation (scikit-learn's alpha) -------------------------------------------------

def l2_penalty(flat, alpha, n, total=None, factor=1.0):
    """Add scikit-learn's L2 term for the parameters with ``decay=True``; return the loss term.

    ``flat`` is a ``FlatBuffer`` (its ``data``, ``grad`` and ``decay_mask``); ``n`` is the number
    of samples in the batch (or the sum of their weights). In one pass over the buffer, for every
    masked weight ``W``: ``grad += alpha * W / n``; the return value is
    ``0.5 * alpha * sum(W**2) / n``, which scikit-learn adds to the loss. With ``total`` the term is
    added to it instead (``total[0] += factor * term``, on its device) and None is returned.
    """
    alpha = float(alpha)
    if alpha < 0 or not np.isfinite(alpha):
        raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n!r}")
    if alpha == 0 or flat is None:
        return 0.0 if total is None else None
    squares = _array.l2_masked(flat.data, flat.grad, flat.device_mask(), alpha / n, total=total,
                               factor=0.5 * alpha / n * factor)
    return None if squares is None else 0.5 * alpha * squares / n

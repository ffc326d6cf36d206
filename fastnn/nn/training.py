"""The training loop: ``fit``, ``evaluate``, ``predict``, callbacks and batch augmentation.

``fit`` trains any ``Sequential`` (or single layer) with mini-batches, an optimizer from
``fastnn.nn.optimizers``, an optional schedule from ``fastnn.nn.schedules``, scikit-learn's L2
penalty (``alpha``), decoupled or coupled weight decay (``weight_decay``), gradient clipping, and
callbacks. One ``seed`` drives everything random (weight initialisation of an unbuilt model without
a seed of its own, dropout, shuffling, the validation split, augmentation): the same seed twice
gives bitwise-identical weights.

Devices: ``fit(..., device="cuda")`` (or a model already moved with ``model.to("cuda")``) trains
on the GPU. The training and validation data move to the device once per fit (per mini-batch when
they would take more than half of the free device memory, or when ``augment`` runs, which works on
host batches); mini-batches are gathered on the device. The loss, the accuracy counts and the
parameters' finiteness check add up on the device and come back once per epoch, unless something
reads them per batch (a live progress bar, a callback with ``on_batch_end``, a metric other than
accuracy, a loss of one's own): then once per batch. ``predict`` returns NumPy arrays.
"""
import functools
import math
import numbers
import time

import numpy as np

from .. import kernels as K
from . import _array
from . import losses as _losses
from . import optimizers as _optimizers
from . import schedules as _schedules
from .base import model_buffers
from .optimizers import Optimizer, clip_grad_norm
from .progress import Progress
from .._kernels._validate import is_int


# scikit-learn's MLP words for the same fault (it raises ValueError after its last epoch).
DIVERGED = ("Solver produced non-finite parameter weights. The input data may contain large "
            "values and need to be preprocessed.")


class DivergenceError(ValueError, FloatingPointError):
    """Training produced a non-finite loss or non-finite parameters.

    Raised at the end of the epoch in which it happened, by ``fit`` and by every estimator; the
    model is left as it was before that epoch (``fit``), or untouched (the estimators). A
    ValueError, as scikit-learn's MLP raises for it, and a FloatingPointError.
    """


def _all_finite(flat):
    return flat is None or math.isfinite(_array.sum_squares(flat.data))


def _reusing_buffers(fn):
    """Run ``fn`` inside ``fastnn.kernels.reuse_buffers()``: each batch reuses the arrays of the
    batch before it that nobody holds any more, so the steady state allocates nothing."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with K.reuse_buffers():
            return fn(*args, **kwargs)
    return run

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping",
           "LambdaCallback", "RandomShift", "RandomFlip", "Compose"]


# --- history and callbacks ---------------------------------------------------------------------

class History:
    """Per-epoch records: ``history[key]`` is a list with one value per epoch.

    Keys: ``loss`` (training loss, L2 penalty included), each metric (``accuracy``...), ``val_loss``
    and ``val_<metric>`` with validation data, ``lr`` (the rate used in the epoch) and ``time``
    (seconds). ``epoch`` lists the epoch indices (0-based); ``params`` the fit settings.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}
        self.stopped_epoch = None

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def __len__(self):
        return len(self.epoch)

    def __repr__(self):
        return f"History(epochs={len(self.epoch)}, keys={sorted(self.history)})"

    def to_frame(self):
        """A pandas DataFrame: one row per epoch (index ``epoch``, 1-based), one column a key."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("History.to_frame needs pandas: pip install pandas") from None
        return pd.DataFrame(self.history,
                            index=pd.Index([e + 1 for e in self.epoch], name="epoch"))

    def plot(self, keys=None, ax=None):
        """Curves of the history with matplotlib: one panel for the losses and one per metric
        (training and ``val_`` curves together); returns the axes. ``keys``: the training keys
        to draw (default every key but ``lr`` and ``time``); ``ax``: axes to draw on (one per
        panel)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        if keys is None:
            keys = [k for k in self.history
                    if k not in ("lr", "time") and not k.startswith("val_")]
        keys = [keys] if isinstance(keys, str) else list(keys)
        for k in keys:
            if k not in self.history:
                raise KeyError(f"{k!r} is not in the history; it holds {sorted(self.history)}")
        if ax is None:
            _, ax = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
            ax = ax[0]
        ax = [ax] if not hasattr(ax, "__len__") else list(ax)
        if len(ax) != len(keys):
            raise ValueError(f"ax must hold one axes per key ({len(keys)}), got {len(ax)}")
        epochs = [e + 1 for e in self.epoch]
        for a, k in zip(ax, keys):
            a.plot(epochs, self.history[k], label="training")
            if f"val_{k}" in self.history:
                a.plot(epochs, self.history[f"val_{k}"], label="validation")
            a.set_xlabel("epoch")
            a.set_ylabel(k)
            a.set_title(k)
            a.legend()
        return ax


class Callback:
    """Base class. ``fit`` sets ``self.trainer`` (with ``model``, ``optimizer``, ``history``,
    ``has_validation`` and ``stop_training``, which a callback sets to True to stop) and calls
    the hooks below; ``logs`` is the epoch's record (see ``History``)."""

    trainer = None

    def set_trainer(self, trainer):
        self.trainer = trainer

    @property
    def model(self):
        return None if self.trainer is None else self.trainer.model

    def on_train_begin(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class LambdaCallback(Callback):
    """Wrap ``f(epoch, logs)``, called at each epoch end; a True return value stops training."""

    def __init__(self, on_epoch_end):
        self._fn = on_epoch_end

    def on_epoch_end(self, epoch, logs=None):
        if self._fn(epoch, logs):
            self.trainer.stop_training = True


def _mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor.lower()
        mode = "max" if any(s in name for s in ("acc", "score", "auc", "r2")) else "min"
    return mode


class _Monitor(Callback):
    """Shared bookkeeping of a monitored value: best so far and whether the latest improved."""

    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = None

    def on_train_begin(self, logs=None):
        if self.monitor.startswith("val_") and not self.trainer.has_validation:
            raise ValueError(f"{type(self).__name__} monitors {self.monitor!r} but fit has no "
                             "validation data: pass validation_data= or validation_split=, or "
                             "monitor a training value such as 'loss'")
        self.best = None

    def _current(self, logs):
        if self.monitor not in logs:
            raise ValueError(f"{type(self).__name__}: {self.monitor!r} is not among the logged "
                             f"values {sorted(logs)}")
        return float(logs[self.monitor])

    def _improved(self, current):
        if not math.isfinite(current):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return current < self.best - self.min_delta
        return current > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    ``restore_best_weights=True`` copies the flat parameter buffer (and the layers' buffers, such
    as BatchNorm running statistics) at the best epoch and puts it back when training ends.
    ``best_epoch`` and ``stopped_epoch`` (or None) are set after training.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best_weights=True, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        if not isinstance(patience, numbers.Integral) or patience < 0:
            raise ValueError(f"patience must be an int >= 0, got {patience!r}")
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self.best_epoch = None
        self.stopped_epoch = None
        self._wait = 0
        self._best_state = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.best_epoch = self.stopped_epoch = None
        self._wait = 0
        self._best_state = None

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if epoch < self.start_from_epoch:
            return
        if self._improved(current):
            self.best = current
            self.best_epoch = epoch
            self._wait = 0
            if self.restore_best_weights:
                self._best_state = _snapshot(self.trainer.model, self.trainer.optimizer.flat,
                                             self._best_state)
            return
        self._wait += 1
        if self._wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs=None):
        if self._best_state is not None:
            _restore(self.trainer.model, self.trainer.optimizer.flat, self._best_state)
        self.trainer.history.stopped_epoch = self.stopped_epoch


def _snapshot(model, flat, into=None):
    """Copies of the parameter buffer and every layer buffer (reusing ``into``'s arrays)."""
    bufs = model_buffers(model)
    if into is None:
        return _array.copy(flat.data), {k: _array.copy(v) for k, v in bufs.items()}
    data, saved = into
    _array.assign(data, flat.data)
    for k, v in bufs.items():
        _array.assign(saved[k], v)
    return into


def _restore(model, flat, state):
    data, saved = state
    _array.assign(flat.data, data)
    for k, v in model_buffers(model).items():
        _array.assign(v, saved[k])


# --- augmentation --------------------------------------------------------------------------------

class RandomShift:
    """Shift each image of an (N, C, H, W) batch by up to ``max_shift`` pixels along H and W.

    Shifts are drawn uniformly from ``[-max_shift, max_shift]`` per image and axis; uncovered
    pixels take ``fill``.
    """

    def __init__(self, max_shift=2, fill=0.0):
        if not isinstance(max_shift, numbers.Integral) or max_shift < 0:
            raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift = int(max_shift)
        self.fill = float(fill)

    def __call__(self, x, rng):
        if x.ndim != 4:
            raise ValueError(f"RandomShift expects (N, C, H, W) batches, got shape {x.shape}")
        s = self.max_shift
        n, _, h, w = x.shape
        shifts = rng.integers(-s, s + 1, size=(n, 2))
        if s == 0:
            return x
        out = np.full_like(x, self.fill)
        for i in range(n):
            dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
            if abs(dy) >= h or abs(dx) >= w:
                continue
            out[i, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                x[i, :, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        return out

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift})"


class RandomFlip:
    """Mirror images of an (N, C, H, W) batch with probability ``p``: left-right
    (``horizontal=True``) and/or top-bottom (``vertical=True``), independently per image."""

    def __init__(self, horizontal=True, vertical=False, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        self.horizontal = bool(horizontal)
        self.vertical = bool(vertical)
        self.p = float(p)

    def __call__(self, x, rng):
        if x.ndim != 4:
            raise ValueError(f"RandomFlip expects (N, C, H, W) batches, got shape {x.shape}")
        n = x.shape[0]
        if self.horizontal:
            flip = rng.random(n) < self.p
            x[flip] = x[flip][..., ::-1]
        if self.vertical:
            flip = rng.random(n) < self.p
            x[flip] = x[flip][..., ::-1, :]
        return x

    def __repr__(self):
        return f"RandomFlip(horizontal={self.horizontal}, vertical={self.vertical}, p={self.p})"


class Compose:
    """Apply augmentations in order: each is ``f(batch, rng) -> batch``."""

    def __init__(self, steps):
        self.steps = list(steps)
        for f in self.steps:
            if not callable(f):
                raise TypeError(f"augmentations must be callables f(batch, rng), got {f!r}")

    def __call__(self, x, rng):
        for f in self.steps:
            x = f(x, rng)
        return x


def _augmenter(augment):
    if augment is None:
        return None
    if isinstance(augment, (list, tuple)):
        return Compose(augment) if augment else None
    if not callable(augment):
        raise TypeError(f"augment must be a callable f(batch, rng) or a list of them, "
                        f"got {augment!r}")
    return augment


# --- metrics -------------------------------------------------------------------------------------

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


# --- data ----------------------------------------------------------------------------------------

def _float_dtype(model, x):
    dtype = getattr(model, "dtype", None) if getattr(model, "built", False) else None
    if dtype is None:
        given = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        dtype = np.float64 if given == np.float64 else np.float32
    return np.dtype(dtype)


def _prepare(x, y, loss_fn, dtype, sample_weight, name="x"):
    """Host arrays, checked: x (N, ...) of ``dtype``, targets, float64 sample weights."""
    x = np.ascontiguousarray(_array.to_host(x), dtype=dtype)
    y = _array.to_host(y)
    if x.ndim < 2:
        raise ValueError(f"{name} must be at least 2-D (N, features...), got shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"{name} has no samples")
    prepare = getattr(loss_fn, "prepare_target", None)
    y = prepare(y, dtype) if prepare is not None else np.ascontiguousarray(y)
    if len(y) != n:
        raise ValueError(f"{name} has {n} samples but its targets have {len(y)}")
    if sample_weight is not None:
        sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {sample_weight.shape}")
        if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
            raise ValueError("sample_weight must hold finite, non-negative values")
    return x, y, sample_weight


def _check_int(value, name, minimum):
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _loss_of(loss):
    return _losses.get(loss) if isinstance(loss, (str, type)) else loss


# --- devices -------------------------------------------------------------------------------------

def _model_device(model):
    return getattr(model, "device", "cpu")


def _fits_on_device(nbytes):
    """Whether ``nbytes`` of data may stay on the GPU: at most half of its free memory."""
    try:
        from numba import cuda
        free, _ = cuda.current_context().get_memory_info()
    except Exception:  # the simulator, or a driver without the query
        return True
    return nbytes <= free // 2


def _on_device(device, *arrays):
    """``arrays`` (host, or None) moved to ``device`` once, and whether they now live there.

    On 'cuda' they move only when they fit (``_fits_on_device``); otherwise they stay on the
    host and batches move one at a time (``_batch_to``).
    """
    if device == "cpu":
        return arrays, True
    nbytes = sum(a.nbytes for a in arrays if a is not None and not _array.is_cuda_array(a))
    if not _fits_on_device(nbytes):
        return arrays, False
    return _batch_to(device, *arrays), True


def _batch_to(device, *arrays):
    """Host batches moved to ``device`` (no copy when they are there already)."""
    if device == "cpu":
        return arrays
    return tuple(None if a is None else _array.move(a, device) for a in arrays)


# --- fit / evaluate / predict --------------------------------------------------------------------

def _build(model, x, dtype, init_seed):
    if getattr(model, "built", False):
        return
    own_seed = getattr(model, "seed", None)
    rng = None if (own_seed is not None or init_seed is None) else np.random.default_rng(init_seed)
    if hasattr(model, "layers"):  # Sequential: build() runs one forward pass on a zero sample
        model.build(x.shape[1:], rng=rng, dtype=dtype)
    else:
        if rng is not None:
            model._rng = rng
        model.forward(x[:1], training=False)


def _make_schedule(schedule, optimizer):
    if schedule is None:
        return None
    if isinstance(schedule, _schedules.Schedule):
        return schedule.bind(optimizer) if schedule.optimizer is not optimizer else schedule
    if isinstance(schedule, str):
        return _schedules.get(schedule, optimizer)
    if isinstance(schedule, tuple) and len(schedule) == 2 and isinstance(schedule[1], dict):
        return _schedules.get(schedule[0], optimizer, **schedule[1])
    if callable(schedule):
        return schedule  # f(epoch) -> lr, applied at the start of each epoch
    raise TypeError("schedule must be a name, (name, kwargs), a Schedule or a callable "
                    f"f(epoch) -> lr, got {schedule!r}")


def _callbacks(callbacks):
    out = []
    for cb in callbacks or ():
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(LambdaCallback(cb))
        else:
            raise TypeError(f"callbacks must be Callback objects or f(epoch, logs), got {cb!r}")
    return out


@K.cpu_bound
@_reusing_buffers
def fit(model, x, y, loss="cross_entropy", optimizer="adam", lr=1e-3, batch_size=32, epochs=10,
        validation_data=None, validation_split=0.0, shuffle=True, seed=None, schedule=None,
        weight_decay=0.0, alpha=0.0, clip_norm=None, callbacks=(), augment=None, metrics=None,
        verbose=0, sample_weight=None, optimizer_options=None, device=None):
    """Train ``model`` on ``(x, y)`` with mini-batches; returns a ``History``.

    - ``loss``: "cross_entropy" (integer class targets), "binary_cross_entropy" (0/1 targets of
      the output's shape), "mse", or a loss object ``f(output, target, sample_weight) ->
      (loss, doutput)``.
    - ``optimizer``: "adam", "adamw", "sgd", "rmsprop", "adagrad" (built with ``lr``,
      ``weight_decay`` and ``optimizer_options``, e.g. ``{"momentum": 0.9}``), or an
      ``Optimizer`` over the model's parameters (its ``lr`` and state are kept: a warm start).
    - ``weight_decay``: the optimizer's decay of parameters with ``decay=True`` (decoupled for
      AdamW, added to the gradient otherwise). ``alpha``: scikit-learn's L2 penalty
      (``0.5 * alpha * ||W||^2 / batch size`` added to the loss, ``alpha * W / batch size`` to the
      gradients, for ``decay=True`` parameters).
    - ``clip_norm``: clip the global gradient norm to this value before each step.
    - ``schedule``: a name ("step", "cosine", ...), ``(name, kwargs)``, a ``Schedule`` or
      ``f(epoch) -> lr``; stepped after every epoch (a plateau schedule gets its ``monitor``
      value, by default ``val_loss`` with validation data, else ``loss``).
    - ``validation_data``: ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``; else
      ``validation_split`` holds out that fraction of the samples (a seeded random subset).
    - ``augment``: ``f(batch, rng) -> batch`` or a list of them (``RandomShift``, ``RandomFlip``);
      it receives a private copy of each training batch.
    - ``metrics``: names ("accuracy", "mae", "mse") or ``f(y_true, output) -> float``; default
      accuracy for classification losses. Training metrics are averaged over the epoch's batches
      (training-mode outputs); validation values come from ``evaluate``.
    - ``verbose`` (Keras' meaning): 0 silent; 1 a live line per epoch on a terminal (batch,
      samples/s, ETA, loss and metrics), one line per epoch when stdout is not a terminal; 2 one
      line per epoch; "auto" is 1. Everything goes to stdout.
    - ``seed``: drives weight initialisation (for an unbuilt model without a seed of its own),
      shuffling, the validation split, augmentation and the layers' dropout draws.
    - ``device``: "cpu", "cuda" or "auto" moves the model there (``model.to``) before training;
      None trains where the model is. On "cuda" the data moves to the GPU once (see the module
      docstring) and the model stays there afterwards.
    """
    trainer = _Trainer(model, x, y, loss=loss, optimizer=optimizer, lr=lr, batch_size=batch_size,
                       epochs=epochs, validation_data=validation_data,
                       validation_split=validation_split, shuffle=shuffle, seed=seed,
                       schedule=schedule, weight_decay=weight_decay, alpha=alpha,
                       clip_norm=clip_norm, callbacks=callbacks, augment=augment,
                       metrics=metrics, verbose=verbose, sample_weight=sample_weight,
                       optimizer_options=optimizer_options, device=device)
    return trainer.run()


class _Trainer:
    """One call of ``fit`` in named steps: ``__init__`` prepares (checks, data, build, device,
    optimizer, callbacks, batch buffers), ``run_epoch`` trains one epoch and returns its logs,
    ``end_epoch`` records them (divergence check, history, schedule, callbacks, display).

    Callbacks see it as ``self.trainer``: ``model``, ``optimizer``, ``history``,
    ``has_validation``, ``epochs`` and ``stop_training`` (set it to True to stop).
    """

    def __init__(self, model, x, y, loss, optimizer, lr, batch_size, epochs, validation_data,
                 validation_split, shuffle, seed, schedule, weight_decay, alpha, clip_norm,
                 callbacks, augment, metrics, verbose, sample_weight, optimizer_options,
                 device):
        epochs = _check_int(epochs, "epochs", 0)
        batch_size = _check_int(batch_size, "batch_size", 1)
        if verbose not in (0, 1, 2, False, True, "auto"):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
        if validation_data is not None and validation_split:
            raise ValueError("pass validation_data or validation_split, not both")
        if clip_norm is not None and not (isinstance(clip_norm, numbers.Real) and clip_norm > 0):
            raise ValueError(f"clip_norm must be a positive number or None, got {clip_norm!r}")
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")

        loss_fn = _loss_of(loss)
        dtype = _float_dtype(model, x)
        x, y, sample_weight = _prepare(x, y, loss_fn, dtype, sample_weight)
        init_seed, shuffle_seed, split_seed, aug_seed, layer_seed = \
            np.random.SeedSequence(seed).spawn(5)
        x, y, sample_weight, val = _split_validation(x, y, sample_weight, loss_fn, dtype,
                                                     validation_data, validation_split,
                                                     split_seed)

        _build(model, x, dtype, None if seed is None else init_seed)
        _check_output_fits_loss(model, loss_fn)
        n_classes = _class_count(model, loss_fn)
        self.labels_checked = n_classes is not None
        if self.labels_checked:  # once here, so that GPU batches need not read labels back
            K.check_class_indices(y, n_classes)
            if val is not None:
                K.check_class_indices(val[1], n_classes)
        self.loss_options = _loss_options(loss_fn, self.labels_checked)
        if device is not None:
            model.to(device)
        device = _model_device(model)
        if seed is not None:
            _reseed_layers(model, layer_seed)
        opt = _optimizer_for(model, optimizer, lr, weight_decay, optimizer_options)

        self.model, self.optimizer, self.epochs = model, opt, epochs
        self.has_validation = val is not None
        self.stop_training = False
        self.loss_fn, self.alpha, self.clip_norm = loss_fn, alpha, clip_norm
        self.flat = opt.flat
        self.schedule = _make_schedule(schedule, opt)
        self.augment = _augmenter(augment)
        self.metrics = _metric_list(metrics, loss_fn)
        self.callbacks = _callbacks(callbacks)
        self.history = History()
        self.history.params = {"epochs": epochs, "batch_size": batch_size, "samples": len(x),
                               "optimizer": type(opt).__name__,
                               "loss": getattr(loss_fn, "name", None)}
        self.monitor = (getattr(self.schedule, "monitor", None)
                        or ("val_loss" if val is not None else "loss"))

        n = len(x)
        self.n, self.batch_size = n, batch_size
        self.n_batches = (n + batch_size - 1) // batch_size
        self.shuffle = shuffle
        self.shuffle_rng = np.random.default_rng(shuffle_seed)
        self.aug_rng = np.random.default_rng(aug_seed)
        self.device = device
        # Where batches come from: host arrays (CPU; or a GPU when augmenting or when the data
        # does not fit), or arrays resident on the device, gathered there.
        (x_dev, y_dev), resident = _on_device(device, x, y)
        self.gather_on_device = device != "cpu" and resident and self.augment is None
        if self.gather_on_device:
            x, y = x_dev, y_dev
        if val is not None:
            (vx, vy), _ = _on_device(device, val[0], val[1])
            val = (vx, vy, val[2])
        self.x, self.y, self.sample_weight, self.val = x, y, sample_weight, val
        self.gather = shuffle or self.augment is not None
        bsz = min(batch_size, n)
        self.xbuf = _array.empty_like(x, (bsz,) + tuple(x.shape[1:])) if self.gather else None
        self.ybuf = _array.empty_like(y, (bsz,) + tuple(y.shape[1:])) if self.gather else None
        self.wbuf = (np.empty(bsz, dtype=np.float64)
                     if self.gather and sample_weight is not None else None)
        self.progress = Progress(verbose, epochs, self.n_batches, n)
        self._last_finite = None
        self._opt_before = None
        self.params_finite = None
        self.totals = self._device_totals()

    def _device_totals(self):
        """Where the epoch's sums add up on a GPU, read back once at its end (``_DeviceTotals``);
        None (per-batch numbers) on the CPU or when something needs each batch's numbers."""
        per_batch = (self.flat is None or self.progress.live
                     or any(type(cb).on_batch_end is not Callback.on_batch_end
                            for cb in self.callbacks))
        return None if per_batch else _device_sums(self.device, self.loss_fn, self.metrics)

    def run(self):
        """Every epoch (until a callback stops training); returns the ``History``."""
        for cb in self.callbacks:
            cb.set_trainer(self)
        for cb in self.callbacks:
            cb.on_train_begin({})
        for epoch in range(self.epochs):
            logs = self.run_epoch(epoch)
            self.end_epoch(epoch, logs)
            if self.stop_training:
                break
        for cb in self.callbacks:
            cb.on_train_end({})
        return self.history

    def run_epoch(self, epoch):
        """One pass over the training batches; returns the epoch's logs (validation included)."""
        start = time.perf_counter()
        model, opt, flat, sched = self.model, self.optimizer, self.flat, self.schedule
        if flat is not None:  # the last finite state, restored if this epoch diverges
            self._last_finite = _snapshot(model, flat, self._last_finite)
            self._opt_before = opt.snapshot(self._opt_before)
        if callable(sched) and not isinstance(sched, _schedules.Schedule):
            opt.lr = float(sched(epoch))
        epoch_lr = opt.lr
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, {})
        self.progress.begin_epoch(epoch)
        n, batch_size, x, y, sample_weight = (self.n, self.batch_size, self.x, self.y,
                                              self.sample_weight)
        order = self.shuffle_rng.permutation(n) if self.shuffle else None
        order_dev = (_batch_to(self.device, order)[0]
                     if self.gather_on_device and self.shuffle else order)
        for m in self.metrics:
            m.reset()
        total_loss = 0.0
        totals = self.totals
        if totals is not None:
            totals.zero()
        for b in range(self.n_batches):
            lo, hi = b * batch_size, min(n, (b + 1) * batch_size)
            m_b = hi - lo
            if self.gather:
                idx = np.arange(lo, hi) if order is None else order[lo:hi]
                wb = None if self.wbuf is None else np.take(sample_weight, idx,
                                                            out=self.wbuf[:m_b])
                rows = order_dev[lo:hi] if self.gather_on_device else idx
                xb = _array.take_rows(x, rows, self.xbuf[:m_b])
                yb = _array.take_rows(y, rows, self.ybuf[:m_b])
                if self.augment is not None:  # host batches only (gather_on_device is False)
                    xb = self.augment(xb, self.aug_rng)
            else:
                xb, yb = x[lo:hi], y[lo:hi]
                wb = None if sample_weight is None else sample_weight[lo:hi]
            xb, yb = _batch_to(self.device, xb, yb)
            if wb is not None and not wb.sum() > 0:
                continue  # a batch whose weights are all zero contributes nothing
            batch_loss, out = self._step(xb, yb, wb, m_b)
            if totals is not None:
                for i, m in enumerate(self.metrics):
                    m.update(out, yb, totals.metric(i))
                continue
            total_loss += batch_loss * m_b
            for m in self.metrics:
                m.update(out, yb)
            self.progress.batch(b + 1, hi, total_loss / hi, self.metrics)
            for cb in self.callbacks:
                cb.on_batch_end(b, {"loss": batch_loss, "size": m_b})
        self.params_finite = None
        if totals is not None:  # the epoch's one read from the device
            _array.sum_squares(flat.data, totals.squares())
            loss, squares, counts = totals.read()
            total_loss = loss
            self.params_finite = math.isfinite(squares)
            for m, count in zip(self.metrics, counts):
                m.total += count
        logs = {"loss": total_loss / n}
        for m in self.metrics:
            logs[m.name] = m.result()
        if self.val is not None:
            vx, vy, vw = self.val
            res = evaluate(model, vx, vy, loss=self.loss_fn, metrics=self.metrics,
                           sample_weight=vw, _prepared=True, _labels_checked=self.labels_checked)
            logs.update({f"val_{k}": v for k, v in res.items()})
        logs["lr"] = epoch_lr
        logs["time"] = time.perf_counter() - start
        return logs

    def _step(self, xb, yb, wb, m_b):
        """Forward, loss, backward, penalty, clipping and the optimizer step of one batch."""
        opt, flat = self.optimizer, self.flat
        opt.zero_grad()
        out = self.model.forward(xb, training=True)
        if self.totals is None:
            batch_loss, dout = self.loss_fn(out, yb, wb)
        else:  # the batch's share of the epoch's summed loss, added on the device
            batch_loss, dout = self.loss_fn(out, yb, wb, total=self.totals.loss(), factor=m_b,
                                            **self.loss_options)
        self.model.backward(dout, input_grad=False)
        if self.alpha:
            n_b = m_b if wb is None else float(wb.sum())
            if self.totals is None:
                batch_loss += _losses.l2_penalty(flat, self.alpha, n_b)
            else:
                _losses.l2_penalty(flat, self.alpha, n_b, total=self.totals.loss(), factor=m_b)
        if self.clip_norm is not None:
            clip_grad_norm(flat, self.clip_norm)
        opt.step()
        return batch_loss, out

    def end_epoch(self, epoch, logs):
        """Check, record and announce the epoch; a non-finite loss or parameter restores the
        state before the epoch and raises ``DivergenceError``."""
        history, sched = self.history, self.schedule
        finite = self.params_finite if self.params_finite is not None else _all_finite(self.flat)
        if not (math.isfinite(logs["loss"]) and finite):
            history.append(epoch, logs)
            self.progress.end_epoch(epoch, logs)
            if self.flat is not None:
                _restore(self.model, self.flat, self._last_finite)
                self.optimizer.restore(self._opt_before)
            raise DivergenceError(
                f"{DIVERGED} The training loss became {logs['loss']} at epoch {epoch + 1}; "
                "the model is back to its state before that epoch. Scale the inputs, lower "
                "the learning rate or clip gradients.")
        history.append(epoch, logs)
        if isinstance(sched, _schedules.Schedule):
            if sched.needs_metric:
                if self.monitor not in logs:
                    raise ValueError(f"the schedule monitors {self.monitor!r}, which is not "
                                     f"among the logged values {sorted(logs)}")
                sched.step(logs[self.monitor])
            else:
                sched.step()
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)
        self.progress.end_epoch(epoch, logs)


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


def _check_output_fits_loss(model, loss_fn):
    """Cross-entropy needs (N, classes) logits: name the Dense that lacks a Flatten before it."""
    shape = getattr(model, "output_shape", None)
    if not isinstance(loss_fn, _losses.CrossEntropyLoss) or shape is None or len(shape) == 1:
        return
    where = ""
    for i, (layer, given) in enumerate(zip(model.layers, model.layer_input_shapes)):
        if type(layer).__name__ == "Dense" and len(given) > 1:
            where = (f": add Flatten() before layer {i} (Dense), which receives per-sample "
                     f"shape {given}")
            break
    raise ValueError(f"the model's output has per-sample shape {shape}, but the cross-entropy "
                     f"loss needs logits of shape (N, classes){where}")


def _split_validation(x, y, sample_weight, loss_fn, dtype, validation_data, validation_split,
                      split_seed):
    """The training arrays and the validation set ``(x, y, weights)`` or None."""
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, "
                             "sample_weight_val)")
        sw_val = validation_data[2] if len(validation_data) == 3 else None
        val = _prepare(validation_data[0], validation_data[1], loss_fn, dtype, sw_val, "x_val")
    elif validation_split:
        n_val = int(math.ceil(len(x) * float(validation_split)))
        if n_val >= len(x):
            raise ValueError("validation_split leaves no training samples")
        perm = np.random.default_rng(split_seed).permutation(len(x))
        vi, ti = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        val = (x[vi], y[vi], None if sample_weight is None else sample_weight[vi])
        x, y = x[ti], y[ti]
        sample_weight = None if sample_weight is None else sample_weight[ti]
    return x, y, sample_weight, val


def _optimizer_for(model, optimizer, lr, weight_decay, optimizer_options):
    """The ``Optimizer`` given (checked to hold this model's parameters) or one built by name."""
    if isinstance(optimizer, Optimizer):
        if weight_decay:
            raise ValueError("weight_decay applies to optimizers built by fit; set it on the "
                             "Optimizer object instead")
        if optimizer.flat is not _optimizers._flat_of(model):
            raise ValueError("the optimizer does not hold this model's parameters")
        return optimizer
    return _optimizers.get(optimizer, model, lr=lr, weight_decay=weight_decay,
                           **(optimizer_options or {}))


def _reseed_layers(model, seed_seq):
    """Give each layer with run-time randomness (dropout...) a generator derived from the seed."""
    layers = list(getattr(model, "layers", [model]))
    children = seed_seq.spawn(len(layers))
    for layer, child in zip(layers, children):
        if hasattr(layer, "layers"):
            _reseed_layers(layer, child)
        elif getattr(layer, "_rng", None) is not None and not layer.parameters():
            layer._rng = np.random.default_rng(child)


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
        x, y, sample_weight = _prepare(x, y, loss_fn, _float_dtype(model, x), sample_weight)
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
    if batch_size is None:
        if len(x) == 0:
            raise ValueError("predict needs at least one sample")
        dtype = np.dtype(_float_dtype(model, x))
        xs = x[:1] if _array.is_cuda_array(x) else np.ascontiguousarray(x[:1], dtype=dtype)
        (xs,) = _batch_to(_model_device(model), xs)
        per_sample = _widest_activation(model, xs) * dtype.itemsize
        batch_size = int(min(8192, max(64, PREDICT_BATCH_BYTES // (2 * per_sample))))
    batch_size = _check_int(batch_size, "batch_size", 1)
    n = len(x)
    if n == 0:
        raise ValueError("predict needs at least one sample")
    dtype = _float_dtype(model, x)
    device = _model_device(model)
    # on the CPU a NumPy x is read in place (a memory map too): each batch is converted to
    # dtype and C order as it goes, so memory follows a batch, not x
    per_batch = device == "cpu" and isinstance(x, np.ndarray)
    if not per_batch and not (_array.is_cuda_array(x) and np.dtype(x.dtype) == dtype
                              and device == "cuda"):
        x = np.ascontiguousarray(_array.to_host(x), dtype=dtype)
    (x,), _ = _on_device(device, x)
    out = None
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        xb = np.ascontiguousarray(x[lo:hi], dtype=dtype) if per_batch else x[lo:hi]
        (xb,) = _batch_to(device, xb)
        yb = model.forward(xb, training=False)
        if out is None:
            out = _array.empty_like(yb, (n,) + tuple(yb.shape[1:]))
        _array.assign(out[lo:hi], yb)
    return _array.to_host(out)

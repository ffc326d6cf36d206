"""Callbacks of ``fit``: the ``Callback`` base (hooks at train, epoch and batch ends),
``LambdaCallback``, ``EarlyStopping`` (with the monitored-value logic ``ModelCheckpoint`` shares)."""
import math
import numbers

from . import _array
from .base import model_buffers


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


def callback_list(callbacks):
    out = []
    for cb in callbacks or ():
        if isinstance(cb, Callback):
            out.append(cb)
        elif callable(cb):
            out.append(LambdaCallback(cb))
        else:
            raise TypeError(f"callbacks must be Callback objects or f(epoch, logs), got {cb!r}")
    return out

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
import dataclasses
import math
import numbers
import time

import numpy as np

from .. import kernels as K
from . import _array
from . import losses as _losses
from . import optimizers as _optimizers
from . import schedules as _schedules
from ._data import (_all_finite, _batch_to, _check_int, _float_dtype, _input_dtype, _loss_of,
                    _model_device, _on_device, _prepare, _reusing_buffers, _split_validation)
from .augment import Compose, RandomFlip, RandomShift, augmenter
from .callbacks import Callback, EarlyStopping, LambdaCallback, _restore, _snapshot, callback_list
from .history import History
from .inference import evaluate, predict
from .metrics import _class_count, _device_sums, _loss_options, _metric_list
from .optimizers import Optimizer, clip_grad_norm
from .progress import Progress


# scikit-learn's MLP words for the same fault (it raises ValueError after its last epoch).
DIVERGED = ("Solver produced non-finite parameter weights. The input data may contain large "
            "values and need to be preprocessed.")


class DivergenceError(ValueError, FloatingPointError):
    """Training produced a non-finite loss or non-finite parameters.

    Raised at the end of the epoch in which it happened, by ``fit`` and by every estimator; the
    model is left as it was before that epoch (``fit``), or untouched (the estimators). A
    ValueError, as scikit-learn's MLP raises for it, and a FloatingPointError.
    """

__all__ = ["fit", "evaluate", "predict", "History", "Callback", "EarlyStopping",
           "LambdaCallback", "RandomShift", "RandomFlip", "Compose"]


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
    options = FitOptions(loss=loss, optimizer=optimizer, lr=lr, batch_size=batch_size,
                         epochs=epochs, validation_data=validation_data,
                         validation_split=validation_split, shuffle=shuffle, seed=seed,
                         schedule=schedule, weight_decay=weight_decay, alpha=alpha,
                         clip_norm=clip_norm, callbacks=callbacks, augment=augment,
                         metrics=metrics, verbose=verbose, optimizer_options=optimizer_options,
                         device=device)
    trainer = _Trainer(model, x, y, sample_weight, options)
    return trainer.run()


@dataclasses.dataclass
class FitOptions:
    """Everything ``fit`` takes besides the model and the data (its parameters, documented
    there), checked once when made: the trainer reads its settings from here."""

    loss: object
    optimizer: object
    lr: float
    batch_size: int
    epochs: int
    validation_data: object
    validation_split: float
    shuffle: bool
    seed: object
    schedule: object
    weight_decay: float
    alpha: float
    clip_norm: object
    callbacks: object
    augment: object
    metrics: object
    verbose: object
    optimizer_options: object
    device: object

    def __post_init__(self):
        self.epochs = _check_int(self.epochs, "epochs", 0)
        self.batch_size = _check_int(self.batch_size, "batch_size", 1)
        if self.verbose not in (0, 1, 2, False, True, "auto"):
            raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {self.verbose!r}")
        if not 0.0 <= float(self.validation_split) < 1.0:
            raise ValueError(
                f"validation_split must be in [0, 1), got {self.validation_split!r}")
        if self.validation_data is not None and self.validation_split:
            raise ValueError("pass validation_data or validation_split, not both")
        clip = self.clip_norm
        if clip is not None and not (isinstance(clip, numbers.Real) and clip > 0):
            raise ValueError(f"clip_norm must be a positive number or None, got {clip!r}")
        self.alpha = float(self.alpha)
        if not (math.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha must be finite and >= 0, got {self.alpha!r}")


class _Trainer:
    """One call of ``fit`` in named steps: ``__init__`` prepares (checks, data, build, device,
    optimizer, callbacks, batch buffers), ``run_epoch`` trains one epoch and returns its logs,
    ``end_epoch`` records them (divergence check, history, schedule, callbacks, display).

    Callbacks see it as ``self.trainer``: ``model``, ``optimizer``, ``history``,
    ``has_validation``, ``epochs`` and ``stop_training`` (set it to True to stop).
    """

    def __init__(self, model, x, y, sample_weight, options):
        o = options
        loss, epochs, batch_size, seed = o.loss, o.epochs, o.batch_size, o.seed
        loss_fn = _loss_of(loss)
        dtype = _float_dtype(model, x)
        x_dtype = _input_dtype(model, dtype)  # int64 codes for a model opening with an Embedding
        x, y, sample_weight = _prepare(x, y, loss_fn, dtype, sample_weight, x_dtype=x_dtype)
        init_seed, shuffle_seed, split_seed, aug_seed, layer_seed = \
            np.random.SeedSequence(seed).spawn(5)
        x, y, sample_weight, val = _split_validation(x, y, sample_weight, loss_fn, dtype,
                                                     o.validation_data, o.validation_split,
                                                     split_seed, x_dtype)

        _build(model, x, dtype, None if seed is None else init_seed)
        _check_output_fits_loss(model, loss_fn)
        n_classes = _class_count(model, loss_fn)
        self.labels_checked = n_classes is not None
        if self.labels_checked:  # once here, so that GPU batches need not read labels back
            K.check_class_indices(y, n_classes)
            if val is not None:
                K.check_class_indices(val[1], n_classes)
        self.loss_options = _loss_options(loss_fn, self.labels_checked)
        if o.device is not None:
            model.to(o.device)
        device = _model_device(model)
        if seed is not None:
            _reseed_layers(model, layer_seed)
        opt = _optimizer_for(model, o.optimizer, o.lr, o.weight_decay, o.optimizer_options)

        self.model, self.optimizer, self.epochs = model, opt, epochs
        self.has_validation = val is not None
        self.stop_training = False
        self.loss_fn, self.alpha, self.clip_norm = loss_fn, o.alpha, o.clip_norm
        self.flat = opt.flat
        self.schedule = _make_schedule(o.schedule, opt)
        self.augment = augmenter(o.augment)
        self.metrics = _metric_list(o.metrics, loss_fn)
        self.callbacks = callback_list(o.callbacks)
        self.history = History()
        self.history.params = {"epochs": epochs, "batch_size": batch_size, "samples": len(x),
                               "optimizer": type(opt).__name__,
                               "loss": getattr(loss_fn, "name", None)}
        self.monitor = (getattr(self.schedule, "monitor", None)
                        or ("val_loss" if val is not None else "loss"))

        n = len(x)
        self.n, self.batch_size = n, batch_size
        self.n_batches = (n + batch_size - 1) // batch_size
        self.shuffle = o.shuffle
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
        self.gather = o.shuffle or self.augment is not None
        bsz = min(batch_size, n)
        self.xbuf = _array.empty_like(x, (bsz,) + tuple(x.shape[1:])) if self.gather else None
        self.ybuf = _array.empty_like(y, (bsz,) + tuple(y.shape[1:])) if self.gather else None
        self.wbuf = (np.empty(bsz, dtype=np.float64)
                     if self.gather and sample_weight is not None else None)
        self.progress = Progress(o.verbose, epochs, self.n_batches, n)
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
    layers = model.children() or [model]
    children = seed_seq.spawn(len(layers))
    for layer, child in zip(layers, children):
        if layer.children():
            _reseed_layers(layer, child)
        elif getattr(layer, "_rng", None) is not None and not layer.parameters():
            layer._rng = np.random.default_rng(child)

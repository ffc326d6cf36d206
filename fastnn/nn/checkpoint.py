"""``ModelCheckpoint``: a callback of ``fit`` that saves the model in ``fastnn.save``'s format."""
from ._state import save_model
from .callbacks import _Monitor


class ModelCheckpoint(_Monitor):
    """Save the model with ``fastnn.save`` after an epoch (the best so far with ``save_best_only``).

    ``path`` may hold ``str.format`` fields: ``{epoch}`` (1-based) and any logged value, e.g.
    ``"model-{epoch:02d}-{val_loss:.3f}.npz"``. ``save_optimizer`` adds the optimizer state.
    """

    def __init__(self, path, monitor="val_loss", save_best_only=True, mode="auto",
                 save_optimizer=False, verbose=0):
        super().__init__(monitor, mode)
        self.path = str(path)
        self.save_best_only = bool(save_best_only)
        self.save_optimizer = bool(save_optimizer)
        self.verbose = verbose
        self.saved = []  # (epoch, path) of every file written

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            super().on_train_begin(logs)
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            current = self._current(logs)
            if not self._improved(current):
                return
            self.best = current
        path = self.path.format(epoch=epoch + 1, **logs)
        save_model(self.trainer.model, path,
                   optimizer=self.trainer.optimizer if self.save_optimizer else None)
        self.saved.append((epoch, path))
        if self.verbose:
            print(f"Epoch {epoch + 1}: saved model to {path}", flush=True)

"""``History``: what ``fit`` records per epoch (losses, metrics, learning rate, time), as lists,
a pandas frame or a plot."""
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

"""What ``fit`` shows while it trains, with Keras' ``verbose`` semantics, on one stream.

- ``verbose=1`` ("auto"): on a terminal, one line per epoch redrawn in place (at most ten times a
  second) with the batch, a bar, samples per second, the time left and the running loss and
  metrics; it ends with the epoch's logs. When the stream is not a terminal (a log file, a
  pipe, a notebook's captured output), one line per epoch, so a log holds no redraws.
- ``verbose=2``: one line per epoch.
"""
import sys
import time


def format_logs(logs):
    """``loss: 0.1234 - accuracy: 0.9700 - val_loss: ... - lr: 0.001 - 1.23s``."""
    parts = []
    for k, v in logs.items():
        if k == "time":
            continue
        parts.append(f"{k}: {v:.4g}" if k == "lr" else f"{k}: {v:.4f}")
    return " - ".join(parts) + f" - {logs.get('time', 0.0):.2f}s"


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds >= 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Progress:
    """The display of one ``fit``: ``begin_epoch``, ``batch`` after each step, ``end_epoch``."""

    REDRAW_SECONDS = 0.1

    def __init__(self, verbose, epochs, n_batches, n_samples, stream=None, width=20):
        self.stream = sys.stdout if stream is None else stream
        self.verbose = 1 if verbose == "auto" else int(verbose)
        self.live = self.verbose == 1 and _is_terminal(self.stream)
        self.epochs, self.n_batches, self.n_samples = epochs, n_batches, n_samples
        self.width = width
        self._drawn = 0

    def begin_epoch(self, epoch):
        self.epoch = epoch
        self.start = self._last = time.perf_counter()

    def batch(self, done, seen, loss, metrics):
        """After batch ``done`` (1-based) of the epoch, ``seen`` samples in, running ``loss``."""
        if not self.live:
            return
        now = time.perf_counter()
        if done < self.n_batches and now - self._last < self.REDRAW_SECONDS:
            return
        self._last = now
        elapsed = now - self.start
        rate = seen / elapsed if elapsed > 0 else 0.0
        eta = (self.n_samples - seen) / rate if rate > 0 else 0.0
        filled = self.width * done // self.n_batches
        bar = ("=" * filled + (">" if filled < self.width else "")).ljust(self.width, ".")
        values = [f"loss: {loss:.4f}"] + [f"{m.name}: {m.result():.4f}" for m in metrics]
        self._draw(f"{self._prefix()} {done}/{self.n_batches} [{bar}] {rate:,.0f} samples/s "
                   f"- ETA {_duration(eta)} - " + " - ".join(values))

    def end_epoch(self, epoch, logs):
        if not self.verbose:
            return
        line = f"{self._prefix()} - {format_logs(logs)}"
        if self.live:
            self._draw(line)
            self.stream.write("\n")
            self._drawn = 0
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _prefix(self):
        return f"Epoch {self.epoch + 1}/{self.epochs}"

    def _draw(self, text):
        pad = max(0, self._drawn - len(text))  # wipe the rest of a longer previous line
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._drawn = len(text)

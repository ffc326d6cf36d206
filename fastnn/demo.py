"""The demo run (``fastnn demo``): train on scikit-learn's bundled digits and report.

1. fastnn's MLPClassifier beside scikit-learn's, same parameters, same data: accuracy and fit
   time, each fit timed ``--repeats`` times, interleaved (fastnn, sklearn, fastnn, sklearn, ...),
   medians compared.
2. A small CNN (``fastnn.nn`` layers inside ``NeuralNetClassifier``): accuracy and images/s.

The load average is read before and after the timings; above the cores this process may use, the
timings are noisy and the demo says so. ``--plot out.png`` saves the loss curves.
"""
import argparse
import os
import statistics
import sys
import time
import warnings

from ._info import usable_cores

DESCRIPTION = ("Train fastnn's MLPClassifier beside scikit-learn's MLPClassifier, and a small "
               "CNN (NeuralNetClassifier with fastnn.nn layers), on scikit-learn's bundled "
               "digits; print accuracy, fit time and the speed ratio.")
EPILOG = ("Each MLP fit is timed several times, fastnn and scikit-learn in turn, and the medians "
          "are compared. Timings are noisy while other programs keep the CPU busy: the demo "
          "prints the load average and warns when it is above the core count.")
QUICK = {"epochs": 10, "cnn_epochs": 2}


def add_arguments(p):
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="MLP epochs (default 200; 10 with --quick)")
    p.add_argument("--cnn-epochs", type=int, default=None, metavar="N",
                   help="CNN epochs (default 15; 2 with --quick)")
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="timed fits of each MLP; the median is reported (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="a short run (10 MLP epochs, 2 CNN epochs): checks that everything works")
    p.add_argument("--plot", default=None, metavar="PATH",
                   help="save the loss curves of the three models to this image file (PNG); "
                        "needs matplotlib")
    return p


# --------------------------------------------------------------------------------------------
# output helpers

class Progress:
    """A live status line: rewritten in place (carriage return) on a terminal; on anything else
    (a file, a pipe) each step is one plain line, and per-epoch updates are left out."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._width = 0

    def step(self, text, transient=False):
        if self.tty:
            pad = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + pad)
            self.stream.flush()
            self._width = len(text)
        elif not transient:
            print(text, file=self.stream, flush=True)

    def clear(self):
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def loadavg():
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def speed_phrase(t_fastnn, t_peer, peer="scikit-learn"):
    """'fastnn 2.3x faster than scikit-learn' or 'fastnn 0.8x as fast as scikit-learn (slower)':
    the speed ratio is peer time / fastnn time, phrased right whichever side is faster."""
    ratio = t_peer / t_fastnn
    if ratio >= 1:
        return f"fastnn {ratio:.1f}x faster than {peer}"
    return f"fastnn {ratio:.2f}x as fast as {peer} (slower)"


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _secs(times):
    med = statistics.median(times)
    if len(times) == 1:
        return f"{med:.2f} s"
    return f"{med:.2f} s (median of {len(times)}: {min(times):.2f}-{max(times):.2f})"


# --------------------------------------------------------------------------------------------
# the run

def cnn_layers():
    from fastnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    return [Conv2D(16, 3, padding=1), ReLU(), MaxPool2D(2), Conv2D(32, 3, padding=1), ReLU(),
            MaxPool2D(2), Flatten(), Dense(64), ReLU()]


def run(epochs=200, cnn_epochs=15, repeats=3, plot=None, progress=None, out=print):
    """Train and time the three models; print the report through ``out``; return the figures."""
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLP

    import fastnn
    from fastnn.sklearn import MLPClassifier, NeuralNetClassifier

    progress = progress or Progress()
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25,
                                                        random_state=0)
    n_cores = usable_cores()
    loads = [loadavg()]
    out(f"fastnn {fastnn.__version__}: scikit-learn digits, {len(X_train)} train / "
        f"{len(X_test)} test images of 8x8 pixels")
    out(f"{n_cores} CPU core(s) usable, load average "
        + ("unknown" if loads[0] is None else f"{loads[0]:.2f}") + " before timing")

    params = dict(hidden_layer_sizes=(100,), max_iter=epochs, random_state=0)
    progress.step("compiling fastnn's kernels (or loading them from the cache)...")
    MLPClassifier(**{**params, "max_iter": 1}).fit(X_train[:50], y_train[:50])
    NeuralNetClassifier(cnn_layers(), input_shape=(1, 8, 8), max_iter=1).fit(X_train[:64],
                                                                              y_train[:64])
    times = {"fastnn": [], "sklearn": []}
    models = {}
    makers = {"fastnn": lambda: MLPClassifier(**params), "sklearn": lambda: SkMLP(**params)}
    total = 2 * repeats
    for i in range(repeats):
        for j, name in enumerate(makers):
            progress.step(f"MLP fit {2 * i + j + 1}/{total}: {name}, {epochs} epochs")
            models[name], t = _timed(lambda: makers[name]().fit(X_train, y_train))
            times[name].append(t)
    loads.append(loadavg())
    progress.clear()
    ours, ref = models["fastnn"], models["sklearn"]
    acc = {"fastnn": float(ours.score(X_test, y_test)), "sklearn": float(ref.score(X_test, y_test))}
    med = {k: statistics.median(v) for k, v in times.items()}
    out(f"\nMLP 64-100-10, adam, {epochs} epochs; each fit timed {repeats}x, interleaved")
    out(f"  fastnn.sklearn.MLPClassifier : accuracy {acc['fastnn']:.4f}  "
        f"fit {_secs(times['fastnn'])}")
    out(f"  sklearn MLPClassifier        : accuracy {acc['sklearn']:.4f}  "
        f"fit {_secs(times['sklearn'])}")
    phrase = speed_phrase(med["fastnn"], med["sklearn"])
    out(f"  {phrase}")

    def on_epoch(epoch, logs=None):
        loss = (logs or {}).get("loss")
        progress.step(f"CNN epoch {epoch + 1}/{cnn_epochs}"
                      + ("" if loss is None else f", loss {loss:.4f}"), transient=True)

    progress.step(f"CNN fit: {cnn_epochs} epoch(s)")
    cnn = NeuralNetClassifier(cnn_layers(), input_shape=(1, 8, 8), max_iter=cnn_epochs,
                              batch_size=32, learning_rate_init=2e-3, random_state=0,
                              callbacks=[on_epoch])
    cnn, t_cnn = _timed(lambda: cnn.fit(X_train, y_train))
    loads.append(loadavg())
    progress.clear()
    acc["cnn"] = float(cnn.score(X_test, y_test))
    seen = cnn.n_iter_ * len(X_train)
    out(f"\nCNN conv16-pool-conv32-pool-64-10 (NeuralNetClassifier), {cnn.n_iter_} epoch(s)")
    out(f"  accuracy {acc['cnn']:.4f}  fit {t_cnn:.2f} s  ({seen / t_cnn:,.0f} training images/s)")

    known = [v for v in loads if v is not None]
    if known:
        out(f"\nload average {' -> '.join(f'{v:.2f}' for v in known)} (before, after the MLP "
            f"timings, after the CNN) on {n_cores} core(s)")
        if max(known) > n_cores:
            out(f"warning: the load average ({max(known):.2f}) is above the {n_cores} usable "
                "core(s): other programs compete for the CPU and these timings are noisy; "
                "run again on a quieter machine for figures to trust")
    result = {"accuracy": acc, "fit_s": times, "median_fit_s": med, "cnn_fit_s": t_cnn,
              "ratio": med["sklearn"] / med["fastnn"], "phrase": phrase, "loadavg": loads,
              "cores": n_cores, "curves": {"fastnn MLPClassifier": list(ours.loss_curve_),
                                           "sklearn MLPClassifier": list(ref.loss_curve_),
                                           "fastnn CNN": list(cnn.loss_curve_)}}
    if plot:
        save_plot(result["curves"], plot)
        out(f"\nloss curves saved to {plot}")
    return result


def _check_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib "
                         "(or pip install 'fastnn[plot]')") from None


def save_plot(curves, path):
    """Training loss per epoch: the two MLPs on the left, the CNN on the right."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for name, curve in curves.items():
        ax = right if "CNN" in name else left
        ax.plot(range(1, len(curve) + 1), curve, label=name, marker="." if len(curve) < 30 else None)
    left.set_title("MLP 64-100-10 on digits")
    right.set_title("CNN on digits")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (cross-entropy)")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    return path


def main(argv=None, prog=None):
    parser = add_arguments(argparse.ArgumentParser(prog=prog or "fastnn demo",
                                                   description=DESCRIPTION, epilog=EPILOG))
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"epochs": 200, "cnn_epochs": 15}
    epochs = args.epochs if args.epochs is not None else defaults["epochs"]
    cnn_epochs = args.cnn_epochs if args.cnn_epochs is not None else defaults["cnn_epochs"]
    for name, value in (("--epochs", epochs), ("--cnn-epochs", cnn_epochs),
                        ("--repeats", args.repeats)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    if args.plot:
        _check_matplotlib()
    run(epochs=epochs, cnn_epochs=cnn_epochs, repeats=args.repeats, plot=args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

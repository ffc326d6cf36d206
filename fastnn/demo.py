"""The demo run: ``python -m fastnn`` trains on scikit-learn's bundled digits and reports.

1. fastnn's MLPClassifier against scikit-learn's, same parameters, same data: accuracy and time.
2. A small CNN (``fastnn.nn`` layers inside ``NeuralNetClassifier``): accuracy and images/s.
"""
import argparse
import time
import warnings

import numpy as np


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastnn", description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="MLP epochs (default 200)")
    parser.add_argument("--cnn-epochs", type=int, default=15, help="CNN epochs (default 15)")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLP

    import fastnn
    from fastnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from fastnn.sklearn import MLPClassifier, NeuralNetClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
    print(f"fastnn {fastnn.__version__}: scikit-learn digits, {len(X_train)} train / "
          f"{len(X_test)} test images of 8x8 pixels")

    params = dict(hidden_layer_sizes=(100,), max_iter=args.epochs, random_state=0)
    # compile (or load from cache) before timing
    MLPClassifier(**{**params, "max_iter": 1}).fit(X_train[:50], y_train[:50])
    ours, t_ours = _timed(lambda: MLPClassifier(**params).fit(X_train, y_train))
    ref, t_ref = _timed(lambda: SkMLP(**params).fit(X_train, y_train))
    print(f"\nMLP 64-100-10, adam, {args.epochs} epochs")
    print(f"  fastnn.sklearn.MLPClassifier : accuracy {ours.score(X_test, y_test):.4f}  "
          f"fit {t_ours:.2f} s")
    print(f"  sklearn MLPClassifier        : accuracy {ref.score(X_test, y_test):.4f}  "
          f"fit {t_ref:.2f} s  ({t_ref / t_ours:.1f}x the time)")

    cnn = NeuralNetClassifier(
        [Conv2D(16, 3, padding=1), ReLU(), MaxPool2D(2), Conv2D(32, 3, padding=1), ReLU(),
         MaxPool2D(2), Flatten(), Dense(64), ReLU()],
        input_shape=(1, 8, 8), max_iter=args.cnn_epochs, batch_size=32, learning_rate_init=2e-3,
        random_state=0)
    NeuralNetClassifier(cnn.layers, input_shape=(1, 8, 8), max_iter=1).fit(X_train[:64], y_train[:64])
    cnn, t_cnn = _timed(lambda: cnn.fit(X_train, y_train))
    seen = cnn.n_iter_ * len(X_train)
    print(f"\nCNN conv16-pool-conv32-pool-64-10 (NeuralNetClassifier), {cnn.n_iter_} epochs")
    print(f"  accuracy {cnn.score(X_test, y_test):.4f}  fit {t_cnn:.2f} s  "
          f"({seen / t_cnn:,.0f} training images/s)")


if __name__ == "__main__":
    main()

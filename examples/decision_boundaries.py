"""Decision boundaries of fastnn's MLPClassifier: capacity, activation and L2 regularisation.

``fastnn.sklearn.MLPClassifier`` takes the same parameters as scikit-learn's and fits the same
model. Each panel trains one on 100 noisy points and shades its predicted probability over the
plane (training points solid, 500 held-out test points faded):

- top row, two interleaved half-moons and a growing hidden layer: a single ReLU unit underfits
  (here it is dead from the start, and the prediction is constant), two units cut the plane with
  a bent line, more units follow the moons;
- middle row, two concentric circles and different activations: with ``identity`` the network is
  a linear model and cannot separate them; ``logistic``, ``tanh`` and ``relu`` can (ReLU's
  boundary is piecewise linear, the others are smooth). The logistic net first sits on a long
  plateau of the loss: the default patience (``n_iter_no_change=10``) would stop it there;
- bottom row, a large network (two layers of 128 units) trained for 1000 epochs on the moons
  with an increasing L2 penalty ``alpha``: a tiny penalty lets the boundary wrap around
  individual noisy points (overfitting: 100% training accuracy, lower test accuracy); a
  moderate one smooths it; a large one flattens the network back towards a linear model.

Figure ``decision_boundaries.png``. The script also fits scikit-learn's MLPClassifier with the
same settings and prints both total fit times (an illustration on this machine, not a benchmark).
"""
import argparse
import time
import warnings
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sklearn.neural_network  # noqa: E402
from sklearn.datasets import make_circles, make_moons  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402

ROWS = [  # (dataset, varied parameter, values, fixed parameters)
    ("moons", "hidden_layer_sizes", [(1,), (2,), (8,), (100,)], {}),
    ("circles", "activation", ["identity", "logistic", "tanh", "relu"],
     {"hidden_layer_sizes": (20,), "learning_rate_init": 0.01, "n_iter_no_change": 50}),
    ("moons", "alpha", [1e-5, 0.3, 1.0, 10.0],
     {"hidden_layer_sizes": (128, 128), "learning_rate_init": 0.003, "n_iter_no_change": 1000}),
]


def datasets(n):
    moons = make_moons(n_samples=n, noise=0.3, random_state=0)
    circles = make_circles(n_samples=n, noise=0.15, factor=0.4, random_state=0)
    return {name: train_test_split(X, y, train_size=100, random_state=0)
            for name, (X, y) in (("moons", moons), ("circles", circles))}


def shade(ax, clf, X_train, y_train, X_test, y_test):
    lo, hi = np.r_[X_train, X_test].min(axis=0) - 0.5, np.r_[X_train, X_test].max(axis=0) + 0.5
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    proba = clf.predict_proba(np.c_[xx.ravel(), yy.ravel()])[:, 1].reshape(xx.shape)
    ax.contourf(xx, yy, proba, levels=np.linspace(0, 1, 11), cmap="RdBu", alpha=0.8)
    ax.contour(xx, yy, proba, levels=[0.5], colors="k", linewidths=1)
    ax.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap="RdBu", edgecolors="k", s=12,
               alpha=0.25)
    ax.scatter(X_train[:, 0], X_train[:, 1], c=y_train, cmap="RdBu", edgecolors="k", s=22)
    ax.set(xticks=[], yticks=[], xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke run)")
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip the scikit-learn fits used for the timing comparison")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    max_iter = 20 if args.quick else 1000
    data = datasets(600)

    fig, axes = plt.subplots(len(ROWS), 4, figsize=(14, 10.5))
    times = {"fastnn": 0.0, "scikit-learn": 0.0}
    for row, (name, param, values, fixed) in zip(axes, ROWS):
        X_train, X_test, y_train, y_test = data[name]
        for ax, value in zip(row, values):
            params = dict(fixed, max_iter=max_iter, random_state=0, **{param: value})
            with warnings.catch_warnings():  # runs that end at max_iter are expected here
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                clf = MLPClassifier(**params).fit(X_train, y_train)
                times["fastnn"] += time.perf_counter() - start
                if not args.no_sklearn:
                    start = time.perf_counter()
                    sklearn.neural_network.MLPClassifier(**params).fit(X_train, y_train)
                    times["scikit-learn"] += time.perf_counter() - start
            shade(ax, clf, X_train, y_train, X_test, y_test)
            ax.set_title(f"{param}={value}\ntrain {clf.score(X_train, y_train):.2f}, "
                         f"test {clf.score(X_test, y_test):.2f} ({clf.n_iter_} epochs)",
                         fontsize=10)
        row[0].set_ylabel(name, fontsize=12)
    fig.suptitle("fastnn MLPClassifier: probability of the blue class "
                 "(filled points: training, faded: test)")
    fig.tight_layout()
    path = out / "decision_boundaries.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"total fit time over {axes.size} fits: fastnn {times['fastnn']:.2f} s"
          + ("" if args.no_sklearn else f", scikit-learn {times['scikit-learn']:.2f} s")
          + " (first fastnn fits include kernel compilation)")
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

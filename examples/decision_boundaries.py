"""Decision regions of fastnn's MLPClassifier against capacity and L2 strength.

``fastnn.sklearn.MLPClassifier`` takes the same parameters as scikit-learn's and fits the same
model. Each panel trains one on 100 noisy points of two interleaved half-moons and shades its
predicted probability of class 1 over the plane (training points solid, 500 held-out test points
faded; the black line is the 0.5 boundary):

- top row, a growing hidden layer of tanh units (L2 ``alpha=1e-4``): 2 units cut the plane with a
  gently bent line, 3 and 5 units bend it further, 20 units follow the moons. Small networks
  can land in poor local minima, so each panel keeps the best of three random restarts (the one
  with the lowest training loss);
- bottom row, a large ReLU network (two layers of 64 units) with an increasing L2 penalty ``alpha``:
  a tiny penalty lets the boundary wrap around individual noisy points (overfitting: higher
  training than test accuracy); a moderate one smooths it; a large one flattens the network
  back towards a linear model.

Figure ``decision_boundaries.png``, with a colour bar of the predicted probability.
``--sklearn`` also fits scikit-learn's MLPClassifier with the same settings and prints both total
fit times (an illustration on this machine, not a benchmark).
"""
import argparse
import time
import warnings
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402

ROWS = [  # (row label, varied parameter, values, fixed parameters)
    ("capacity: tanh hidden units", "hidden_layer_sizes", [(2,), (3,), (5,), (20,)],
     {"activation": "tanh", "learning_rate_init": 0.02}),
    ("L2 penalty, 64-64 units", "alpha", [1e-4, 0.1, 1.0, 5.0],
     {"hidden_layer_sizes": (64, 64), "learning_rate_init": 0.01}),
]
LEVELS = np.linspace(0, 1, 11)


def shade(ax, clf, X_train, y_train, X_test, y_test):
    lo, hi = np.r_[X_train, X_test].min(axis=0) - 0.5, np.r_[X_train, X_test].max(axis=0) + 0.5
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 150), np.linspace(lo[1], hi[1], 150))
    proba = clf.predict_proba(np.c_[xx.ravel(), yy.ravel()])[:, 1].reshape(xx.shape)
    filled = ax.contourf(xx, yy, proba, levels=LEVELS, cmap="RdBu", alpha=0.8)
    ax.contour(xx, yy, proba, levels=[0.5], colors="k", linewidths=1.2)
    ax.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap="RdBu", vmin=0, vmax=1,
               edgecolors="k", s=10, alpha=0.25)
    ax.scatter(X_train[:, 0], X_train[:, 1], c=y_train, cmap="RdBu", vmin=0, vmax=1,
               edgecolors="k", s=22)
    ax.set(xticks=[], yticks=[], xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]))
    return filled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few iterations (smoke run)")
    parser.add_argument("--sklearn", action="store_true",
                        help="also time scikit-learn's MLPClassifier on the same fits")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    max_iter = 20 if args.quick else 400
    X, y = make_moons(n_samples=600, noise=0.3, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=100, random_state=0)

    fig, axes = plt.subplots(len(ROWS), 4, figsize=(13, 6.8))
    times = {"fastnn": 0.0, "scikit-learn": 0.0}
    for row, (label, param, values, fixed) in zip(axes, ROWS):
        for ax, value in zip(row, values):
            params = dict(fixed, max_iter=max_iter, n_iter_no_change=max_iter, random_state=0,
                          **{param: value})
            with warnings.catch_warnings():  # runs that end at max_iter are expected here
                warnings.simplefilter("ignore", ConvergenceWarning)
                restarts = 3 if param == "hidden_layer_sizes" else 1
                start = time.perf_counter()
                fits = [MLPClassifier(**dict(params, random_state=seed)).fit(X_train, y_train)
                        for seed in range(restarts)]
                times["fastnn"] += time.perf_counter() - start
                clf = min(fits, key=lambda f: f.loss_)
                if args.sklearn:
                    import sklearn.neural_network
                    start = time.perf_counter()
                    sklearn.neural_network.MLPClassifier(**params).fit(X_train, y_train)
                    times["scikit-learn"] += time.perf_counter() - start
            filled = shade(ax, clf, X_train, y_train, X_test, y_test)
            shown = value[0] if param == "hidden_layer_sizes" else f"{value:g}"
            name = "hidden units" if param == "hidden_layer_sizes" else "alpha"
            ax.set_title(f"{name} = {shown}\ntrain {clf.score(X_train, y_train):.2f}, "
                         f"test {clf.score(X_test, y_test):.2f}", fontsize=10)
        row[0].set_ylabel(label, fontsize=11)
    fig.suptitle(f"fastnn MLPClassifier on noisy moons ({max_iter} epochs of Adam; "
                 "filled points: training, faded: test, black line: p = 0.5)")
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    cax = fig.add_axes((0.93, 0.12, 0.015, 0.74))
    fig.colorbar(filled, cax=cax, label="predicted probability of class 1 (blue)")
    path = out / "decision_boundaries.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"total fit time over {axes.size} fits: fastnn {times['fastnn']:.2f} s"
          + (f", scikit-learn {times['scikit-learn']:.2f} s" if args.sklearn else ""))
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

"""Model selection: fastnn's MLPClassifier in a scikit-learn Pipeline, tuned with GridSearchCV.

``fastnn.sklearn.MLPClassifier`` is a scikit-learn estimator, so it drops into the usual
tools: here a ``Pipeline`` standardises the 8x8 digits (``StandardScaler``) and feeds the
network, and ``GridSearchCV`` tries every combination of hidden-layer size and L2 penalty
``alpha`` with 3-fold cross-validation (parameters addressed as ``mlp__alpha``), refits the best
on the whole training set and scores it on a held-out quarter.

``grid_search.png``: left, the mean cross-validated accuracy of each combination (the best one
framed): 4 hidden units underfit whatever the penalty, wider layers score better, and
``alpha=10`` costs a little accuracy; right, the mean fit time per fold, which grows with the
width (the very first fit also compiles the kernels).
"""
import argparse
import time
import warnings
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402


def heatmap(ax, values, rows, cols, fmt, cmap, label, best=None):
    image = ax.imshow(values, cmap=cmap, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=9,
                color="white" if v < values.min() + 0.5 * np.ptp(values) else "black")
    if best is not None:
        ax.add_patch(plt.Rectangle((best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False,
                                   edgecolor="red", linewidth=3))
    ax.set_xticks(range(len(cols)), [f"{c:g}" for c in cols])
    ax.set_yticks(range(len(rows)), [str(r[0]) for r in rows])
    ax.set(xlabel="alpha (L2 penalty)", ylabel="hidden units")
    plt.colorbar(image, ax=ax, label=label)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="a small grid (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        sizes, alphas, max_iter, n = [(4,), (32,)], [1e-4, 10.0], 5, 400
    else:
        sizes, alphas, max_iter, n = [(4,), (16,), (64,), (256,)], [1e-4, 1e-2, 1.0, 10.0], 60, None
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X[:n], y[:n], test_size=0.25,
                                                        random_state=0, stratify=y[:n])
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(max_iter=max_iter, random_state=0))])
    search = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": sizes, "mlp__alpha": alphas}, cv=3)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_train, y_train)
    elapsed = time.perf_counter() - start
    print(f"{len(sizes) * len(alphas)} candidates x 3 folds in {elapsed:.1f} s; best "
          f"{search.best_params_}, CV accuracy {search.best_score_:.3f}, "
          f"held-out accuracy {search.score(X_test, y_test):.3f}")

    res = search.cv_results_
    shape = (len(sizes), len(alphas))
    index = {(tuple(h), a): k for k, (h, a) in enumerate(zip(res["param_mlp__hidden_layer_sizes"],
                                                                res["param_mlp__alpha"]))}
    order = [[index[(s, a)] for a in alphas] for s in sizes]
    scores = np.asarray(res["mean_test_score"])[order].reshape(shape)
    times = np.asarray(res["mean_fit_time"])[order].reshape(shape)
    best = np.unravel_index(np.argmax(scores), shape)
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(12, 4.6))
    heatmap(ax_s, scores, sizes, alphas, ".3f", "viridis", "mean CV accuracy", best)
    ax_s.set_title(f"3-fold CV accuracy (best framed; held-out {search.score(X_test, y_test):.3f})")
    heatmap(ax_t, times, sizes, alphas, ".2f", "magma", "seconds")
    ax_t.set_title("mean fit time per fold (s)")
    fig.suptitle(f"GridSearchCV over Pipeline(StandardScaler, fastnn MLPClassifier), digits, "
                 f"{max_iter} epochs")
    fig.tight_layout()
    path = out / "grid_search.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

"""GridSearchCV on a Dask cluster: the same search, its fits spread over Dask workers.

scikit-learn runs the fits of a search through joblib; with ``dask.distributed`` installed,
``joblib.parallel_backend("dask")`` sends them to a Dask cluster instead of local processes.
Here the cluster is a ``LocalCluster`` inside this process (``processes=False``: one worker
with two threads, no dashboard, nothing leaves the machine), so the script runs offline; on a
real cluster only the ``Client`` line changes (``Client("tcp://scheduler:8786")``).

The grid is tiny (2 sizes x 2 penalties x 3 folds = 12 fits of a Pipeline(StandardScaler,
fastnn MLPClassifier) on the digits). ``dask_grid_search.png``: left, the cross-validated
accuracy of each candidate; right, when each fit ran on the workers' threads (from the task
stream the Dask scheduler records), so the parallelism is visible.
"""
import argparse
import time
import warnings
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastnn.sklearn import MLPClassifier  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="fewer epochs and samples")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import joblib
    from dask.distributed import Client, LocalCluster, get_task_stream

    max_iter, n = (5, 400) if args.quick else (40, None)
    X, y = load_digits(return_X_y=True)
    X, y = X[:n], y[:n]
    sizes, alphas = [(16,), (64,)], [1e-4, 1.0]
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(max_iter=max_iter, random_state=0))])
    search = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": sizes, "mlp__alpha": alphas}, cv=3,
                          n_jobs=-1)
    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        print(f"Dask cluster: {client}")
        start = time.perf_counter()
        with get_task_stream(client) as stream, joblib.parallel_backend("dask"), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            search.fit(X, y)
        elapsed = time.perf_counter() - start
        tasks = stream.data
    print(f"{len(search.cv_results_['params'])} candidates x 3 folds on Dask in {elapsed:.1f} s; "
          f"best {search.best_params_}, CV accuracy {search.best_score_:.3f}")

    res = search.cv_results_
    fig, (ax_s, ax_t) = plt.subplots(1, 2, figsize=(12, 4.4), width_ratios=[1, 1.4])
    names = [f"{p['mlp__hidden_layer_sizes'][0]} units\nalpha {p['mlp__alpha']:g}"
             for p in res["params"]]
    ax_s.barh(range(len(names)), res["mean_test_score"], xerr=res["std_test_score"],
              color="tab:blue")
    ax_s.set_yticks(range(len(names)), names, fontsize=8)
    ax_s.set(xlabel="mean 3-fold CV accuracy", xlim=(0, 1),
             title=f"candidates (best: {search.best_score_:.3f})")
    spans = []
    for task in tasks:
        for s in task.get("startstops", ()):
            if s.get("action") == "compute":
                spans.append((task.get("thread", 0), s["start"], s["stop"]))
    if spans:
        t0 = min(s[1] for s in spans)
        threads = {th: i for i, th in enumerate(sorted({s[0] for s in spans}))}
        for th, a, b in spans:
            ax_t.barh(threads[th], b - a, left=a - t0, height=0.6, color="tab:orange",
                      edgecolor="k")
        ax_t.set_yticks(range(len(threads)), [f"thread {i + 1}" for i in range(len(threads))])
    else:
        ax_t.text(0.5, 0.5, "no task stream recorded", ha="center", transform=ax_t.transAxes)
    ax_t.set(xlabel="seconds since the first task",
             title=f"{len(spans)} tasks on one LocalCluster worker (2 threads)")
    fig.suptitle("GridSearchCV with joblib's Dask backend: Pipeline(StandardScaler, "
                 "fastnn MLPClassifier) on digits")
    fig.tight_layout()
    path = out / "dask_grid_search.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

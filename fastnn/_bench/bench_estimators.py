"""fastnn's MLPClassifier against scikit-learn's, and a CNN through NeuralNetClassifier, on digits.

Both MLPs get identical parameters (adam, ``max_iter`` epochs, stopping disabled with ``tol=0``
and ``n_iter_no_change=max_iter``) on the same float32 split of scikit-learn's bundled digits (and
of 40-feature synthetic data); fits are interleaved (fastnn, scikit-learn, fastnn, ...) and the
medians compared, quietly and beside one busy competing process (``--no-busy`` skips that).
Targets at equal test accuracy (within 0.5 point): >= 5x for (100,) on digits, >= 3x for
(256, 256). The CNN part reports accuracy and training images per second.

    python benchmarks/bench_estimators.py [--repeats 5] [--quick] [--out results.json]
"""
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def digits():
    """scikit-learn's bundled digits, scaled to [0, 1], float32 (both estimators then compute in
    float32)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    X, y = load_digits(return_X_y=True)
    return train_test_split((X / 16.0).astype(np.float32), y, test_size=0.25, random_state=0)


def synthetic40():
    """4,000 samples of 40 features, 10 classes (``make_classification``), float32."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    X, y = make_classification(n_samples=4000, n_features=40, n_informative=20, n_classes=10,
                               random_state=0)
    return train_test_split(X.astype(np.float32), y, test_size=0.25, random_state=0)


def compare_mlp(hidden, epochs, repeats, data, target):
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastnn.sklearn import MLPClassifier
    X_train, X_test, y_train, y_test = data
    params = dict(hidden_layer_sizes=hidden, solver="adam", max_iter=epochs, tol=0.0,
                  n_iter_no_change=epochs, random_state=0)
    models = {}

    def fit(label, cls):
        def run():
            models[label] = cls(**params).fit(X_train, y_train)
        return run

    fns = {"fastnn": fit("fastnn", MLPClassifier), "sklearn": fit("sklearn", SkMLP)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        timings, _ = _common.measure(fns, repeats, warmup=1, min_sample_s=0.0)
    acc = {k: float(m.score(X_test, y_test)) for k, m in models.items()}
    ratio = timings["sklearn"].median / timings["fastnn"].median
    ok = ratio >= target and acc["fastnn"] >= acc["sklearn"] - 0.005
    return {"hidden_layer_sizes": list(hidden), "epochs": epochs,
            "fastnn": timings["fastnn"].as_dict(), "sklearn": timings["sklearn"].as_dict(),
            "speedup": ratio, "accuracy": acc, "target": f">= {target}x at equal accuracy",
            "met": bool(ok), "loadavg": _common.loadavg()}


def cnn_throughput(epochs, repeats, data):
    from fastnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU
    from fastnn.sklearn import NeuralNetClassifier
    X_train, X_test, y_train, y_test = data
    layers = [Conv2D(16, 3, padding=1), ReLU(), MaxPool2D(2), Conv2D(32, 3, padding=1), ReLU(),
              MaxPool2D(2), Flatten(), Dense(64), ReLU()]
    with warnings.catch_warnings():  # compile before timing
        warnings.simplefilter("ignore")
        NeuralNetClassifier(layers, input_shape=(1, 8, 8), max_iter=1).fit(X_train[:64], y_train[:64])
    runs = []
    model = None
    for _ in range(repeats):
        model = NeuralNetClassifier(layers, input_shape=(1, 8, 8), max_iter=epochs, batch_size=32,
                                    learning_rate_init=2e-3, random_state=0, tol=0.0,
                                    n_iter_no_change=epochs)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X_train, y_train)
        runs.append(time.perf_counter() - t0)
    median = float(np.median(runs))
    return {"layers": "conv16-relu-pool-conv32-relu-pool-dense64-relu-dense10", "epochs": epochs,
            "batch_size": 32, "fit_s": runs, "median_fit_s": median,
            "images_per_s": epochs * len(X_train) / median,
            "accuracy": float(model.score(X_test, y_test))}


def main(argv=None):
    args = _common.parser(__doc__, "estimators.json",
                          "few epochs, one repeat (smoke test)").parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    epochs = 5 if args.quick else 200
    data = digits()

    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_estimators", argv), "environment": env, "mlp": []}
    print(f"\nMLPClassifier, adam, {epochs} epochs, stopping disabled, float32 X; medians of "
          f"{repeats} interleaved fits")
    print(f"{'data':>11} {'hidden':>11} {'load':>6} {'fastnn s':>9} {'sklearn s':>10} "
          f"{'speedup':>8} {'acc fastnn':>11} {'acc sklearn':>12}  target")
    cases = [("digits", (100,), 5.0), ("digits", (256, 256), 3.0), ("synthetic40", (256, 256), 3.0)]
    datasets = {"digits": data, "synthetic40": synthetic40()}
    for name, hidden, target in cases:
        runs = _common.with_and_without_busy(
            lambda: compare_mlp(hidden, epochs, repeats, datasets[name], target),
            busy=not args.no_busy)
        for load, r in runs.items():
            r.update(data=name, load=load)
            result["mlp"].append(r)
            print(f"{name:>11} {str(hidden):>11} {load:>6} {r['fastnn']['median_s']:9.3f} "
                  f"{r['sklearn']['median_s']:10.3f} {r['speedup']:7.1f}x "
                  f"{r['accuracy']['fastnn']:11.4f} {r['accuracy']['sklearn']:12.4f}  "
                  f">= {target}x {'PASS' if r['met'] else 'MISS'}", flush=True)
    cnn = cnn_throughput(2 if args.quick else 15, 1 if args.quick else 3, data)
    result["cnn"] = cnn
    print(f"\nNeuralNetClassifier CNN ({cnn['layers']}), {cnn['epochs']} epochs, batch 32: "
          f"accuracy {cnn['accuracy']:.4f}, {cnn['images_per_s']:,.0f} training images/s "
          f"(median fit {cnn['median_fit_s']:.2f} s)")
    return _common.finish(result, args.out)


if __name__ == "__main__":
    main()

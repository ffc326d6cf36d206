"""Prediction against scikit-learn's: throughput on many rows, and the latency of one call.

Latency (what serving a model row by row, cross-validating on small data and online learning
meet): ``MLPClassifier(hidden_layer_sizes=(100,))`` fitted on digits (fastnn's and
scikit-learn's, same parameters), ``predict`` on 1, 32 and 1,797 rows and ``partial_fit`` on 16
rows, calls interleaved, medians per call. Target: fastnn no slower (ratio sklearn time /
fastnn time >= 1), moonshot 2x.

Throughput:
A ``NeuralNetClassifier`` with one hidden ``Dense(100)`` and fastnn's ``MLPClassifier(
hidden_layer_sizes=(100,))`` against scikit-learn's ``MLPClassifier`` of the same shape, each
fitted briefly on 2,000 rows, then ``predict_proba`` on 1,000,000 x 64 float32 rows. Calls are
interleaved; medians are reported with each call's peak of traced extra memory (tracemalloc:
the arrays allocated during the call, the returned probabilities included).
Target: the NeuralNet estimator no slower than scikit-learn, peak extra memory <= 100 MB.

    python benchmarks/bench_predict.py [--rows 1000000] [--repeats 5] [--quick]
"""
LATENCY_ROWS = (1, 32, 1797)
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def fitted(features=64, classes=10, seed=0):
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastnn.nn import Dense, ReLU
    from fastnn.sklearn import MLPClassifier, NeuralNetClassifier
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2000, features)).astype(np.float32)
    y = rng.integers(0, classes, 2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a short fit on purpose
        return {"fastnn NeuralNet": NeuralNetClassifier([Dense(100), ReLU()], max_iter=2,
                                                        random_state=0).fit(X, y),
                "fastnn MLP": MLPClassifier(hidden_layer_sizes=(100,), max_iter=2,
                                            random_state=0).fit(X, y),
                "sklearn MLP": SkMLP(hidden_layer_sizes=(100,), max_iter=2,
                                     random_state=0).fit(X, y)}


def compare(models, X, repeats):
    for m in models.values():  # compile / load cached kernels
        m.predict_proba(X[:5000])
    seconds = {k: [] for k in models}
    peak = {k: 0 for k in models}
    for _ in range(repeats):
        for name, m in models.items():
            tracemalloc.start()
            t0 = time.perf_counter()
            m.predict_proba(X)
            seconds[name].append(time.perf_counter() - t0)
            peak[name] = max(peak[name], tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    out = {"loadavg": _common.loadavg()}
    for name in models:
        out[name] = {"seconds": seconds[name], "median_s": float(np.median(seconds[name])),
                     "peak_extra_mib": peak[name] / 2 ** 20}
    ref = out["sklearn MLP"]["median_s"]
    for name in models:
        out[name]["speedup_vs_sklearn"] = ref / out[name]["median_s"]
    nn = out["fastnn NeuralNet"]
    out["met"] = bool(nn["speedup_vs_sklearn"] >= 1.0 and nn["peak_extra_mib"] <= 100)
    return out


def _per_call(fn, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def latency(repeats, quick=False):
    """Seconds per ``predict`` (1, 32, 1,797 rows) and per ``partial_fit`` (16 rows), fastnn's
    MLPClassifier beside scikit-learn's on digits; medians of interleaved samples."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier as SkMLP

    from fastnn.sklearn import MLPClassifier
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {name: cls(hidden_layer_sizes=(100,), max_iter=20, random_state=0).fit(X, y)
                  for name, cls in (("fastnn", MLPClassifier), ("sklearn", SkMLP))}
    calls = []
    for rows in LATENCY_ROWS:
        calls.append((f"predict {rows} rows", max(3, (20 if quick else 2000) // rows),
                      {k: (lambda m=m, r=rows: m.predict(X[:r])) for k, m in models.items()}))
    calls.append(("partial_fit 16 rows", 5 if quick else 100,
                  {k: (lambda m=m: m.partial_fit(X[:16], y[:16])) for k, m in models.items()}))
    out = {"loadavg": _common.loadavg(), "cases": {}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, n, fns in calls:
            for fn in fns.values():
                fn()  # compiled / cached kernels loaded, first-call costs paid
            samples = {k: [] for k in fns}
            for _ in range(repeats):
                for k, fn in fns.items():
                    samples[k].append(_per_call(fn, n))
            med = {k: float(np.median(v)) for k, v in samples.items()}
            out["cases"][name] = {"seconds": samples, "median_s": med,
                                  "speedup_vs_sklearn": med["sklearn"] / med["fastnn"],
                                  "met": bool(med["sklearn"] / med["fastnn"] >= 1.0)}
    return out


def main(argv=None):
    p = _common.parser(__doc__, "predict.json", "20,000 rows, one repeat")
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = 20_000, 1
    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_predict", argv), "environment": env, "rows": args.rows}
    lat = _common.with_and_without_busy(lambda: latency(3 if args.quick else 9, args.quick),
                                        busy=not args.no_busy)
    result["latency"] = lat
    print("\nlatency per call, fastnn's MLPClassifier beside scikit-learn's (digits, (100,)); "
          "ratio = sklearn time / fastnn time")
    for load, r in lat.items():
        for name, c in r["cases"].items():
            print(f"{load:>6} {name:>20}: fastnn {c['median_s']['fastnn'] * 1e6:8.0f} us, "
                  f"sklearn {c['median_s']['sklearn'] * 1e6:8.0f} us, "
                  f"{c['speedup_vs_sklearn']:.2f}x (target >= 1: "
                  f"{'PASS' if c['met'] else 'MISS'})")
    models = fitted()
    X = np.random.default_rng(1).standard_normal((args.rows, 64)).astype(np.float32)
    runs = _common.with_and_without_busy(lambda: compare(models, X, args.repeats),
                                         busy=not args.no_busy)
    result["runs"] = runs
    print(f"\npredict_proba on {args.rows:,} x 64 float32 rows; medians of {args.repeats}")
    print(f"{'load':>6} {'estimator':>17} {'median s':>9} {'x sklearn':>10} {'peak extra MiB':>15}")
    for load, r in runs.items():
        for name in models:
            m = r[name]
            print(f"{load:>6} {name:>17} {m['median_s']:9.3f} {m['speedup_vs_sklearn']:9.2f}x "
                  f"{m['peak_extra_mib']:15.0f}")
        print(f"{'':>6} target (NeuralNet >= 1x sklearn, <= 100 MB): "
              f"{'PASS' if r['met'] else 'MISS'}")
    return _common.finish(result, args.out)


if __name__ == "__main__":
    main()

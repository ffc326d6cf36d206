"""Cold start: what a new user meets. Fresh Python processes, each timed as a whole (import
included), fastnn beside scikit-learn.

Cases (digits, bundled with scikit-learn):

- ``mlp``: ``MLPClassifier(hidden_layer_sizes=(32,), max_iter=5).fit(X, y).predict(X)``, the
  same program with ``fastnn.sklearn`` and with ``sklearn.neural_network``;
- ``cnn``: ``NeuralNetClassifier`` (Conv2D 6@3x3, ReLU, MaxPool 2, Flatten, Dense 32, ReLU; 2
  epochs) on the 8x8 images; its reference is scikit-learn's ``mlp`` program above (scikit-learn
  has no CNN: it is what the user would otherwise run);
- ``demo``: ``fastnn demo`` as README's first command runs it (its scikit-learn fits included).

Two situations:

- first ever: an empty kernel cache (``NUMBA_CACHE_DIR`` pointed at a new folder, as on a new
  machine, a new container or a CI runner), one run per case, each case with a cache of its
  own (the compile dominates);
- warm cache: the same program again with that cache filled, ``--repeats`` times, fastnn and
  scikit-learn in turn; medians of the wall times and of the per-pair ratio, quiet and beside one
  busy competing process.

Targets: first ever, MLP <= 5 s and CNN <= 8 s; demo reported (<= 30 s); warm cache, the MLP fit
<= 1.2x scikit-learn's wall time.

    python benchmarks/bench_startup.py [--repeats 5] [--quick] [--no-busy] [--no-demo]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

MLP_FIT = """
import warnings; warnings.simplefilter("ignore")
from sklearn.datasets import load_digits
from {module} import MLPClassifier
X, y = load_digits(return_X_y=True)
MLPClassifier(hidden_layer_sizes=(32,), max_iter=5).fit(X / 16.0, y).predict(X / 16.0)
"""

CNN_FIT = """
import warnings; warnings.simplefilter("ignore")
from sklearn.datasets import load_digits
from fastnn.nn import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from fastnn.sklearn import NeuralNetClassifier
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
NeuralNetClassifier([Conv2D(6, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(32), ReLU()],
                    input_shape=(1, 8, 8), max_iter=2).fit(X, y).predict(X)
"""

TARGETS = {"first_ever_s": {"mlp": 5.0, "cnn": 8.0, "demo": 30.0}, "warm_ratio": {"mlp": 1.2}}


def wall(argv, env=None):
    """Seconds a fresh process running ``argv`` takes, start to exit."""
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def programs(quick):
    py = sys.executable
    out = {"mlp": [py, "-c", MLP_FIT.format(module="fastnn.sklearn")],
           "cnn": [py, "-c", CNN_FIT]}
    if not quick:
        out["demo"] = [py, "-m", "fastnn", "demo"]
    return out


def main(argv=None):
    p = _common.parser(__doc__, "startup.json",
                       "one repeat, no demo, no run with an empty kernel cache")
    p.add_argument("--no-demo", action="store_true", help="leave fastnn demo out")
    args = p.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_startup", argv), "environment": env,
              "targets": TARGETS}
    ours = programs(args.quick or args.no_demo)
    sklearn = [sys.executable, "-c", MLP_FIT.format(module="sklearn.neural_network")]
    with tempfile.TemporaryDirectory() as caches:
        # one new kernel cache per program (each is some machine's first program); --quick:
        # the default cache, which the suite's other runs filled
        envs = {name: None if args.quick else
                dict(os.environ, NUMBA_CACHE_DIR=os.path.join(caches, name)) for name in ours}
        first = {name: wall(cmd, envs[name]) for name, cmd in ours.items()}
        first["sklearn"] = wall(sklearn)
        if not args.quick:
            result["first_ever"] = {
                "seconds": first, "loadavg": _common.loadavg(),
                "met": {k: first[k] <= t for k, t in TARGETS["first_ever_s"].items()
                        if k in first}}
        print("\nfirst ever (empty kernel cache), one fresh process each, wall seconds:"
              if not args.quick else "\n--quick: no run with an empty kernel cache")
        for name, s in first.items() if not args.quick else ():
            target = TARGETS["first_ever_s"].get(name)
            print(f"  {name:>8}: {s:6.1f} s" + (f"  (target <= {target:.0f} s: "
                                                 f"{'PASS' if s <= target else 'MISS'})"
                                                 if target else "  (scikit-learn's mlp program)"))

        def pairs():
            times = {name: [] for name in (*ours, "sklearn")}
            for _ in range(repeats):
                for name, cmd in ours.items():
                    times[name].append(wall(cmd, envs[name]))
                times["sklearn"].append(wall(sklearn))
            ratios = {name: statistics.median(a / b for a, b in zip(times[name], times["sklearn"]))
                      for name in ours}
            return {"seconds": times, "median_ratio": ratios, "loadavg": _common.loadavg(),
                    "met": ratios["mlp"] <= TARGETS["warm_ratio"]["mlp"]}

        runs = _common.with_and_without_busy(pairs, busy=not args.no_busy)
    result["warm_cache"] = runs
    print("\nwarm kernel cache, fresh processes, fastnn / scikit-learn wall time (medians):")
    for load, r in runs.items():
        sk = statistics.median(r["seconds"]["sklearn"])
        cells = ", ".join(f"{name} {statistics.median(r['seconds'][name]):.2f} s "
                          f"({r['median_ratio'][name]:.2f}x)" for name in ours)
        print(f"{load:>6}: {cells}; scikit-learn mlp {sk:.2f} s; mlp target <= "
              f"{TARGETS['warm_ratio']['mlp']}: {'PASS' if r['met'] else 'MISS'}")
    return _common.finish(result, args.out)


if __name__ == "__main__":
    main()

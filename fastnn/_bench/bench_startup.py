"""Cold start: a fresh Python process that imports the estimator and fits it, fastnn beside
scikit-learn, plus fastnn's first-ever compile.

- warm cache: ``import`` + ``MLPClassifier(hidden_layer_sizes=(100,), max_iter=50).fit`` on the
  bundled digits, each in a new process, fastnn and scikit-learn in turn; medians of the wall
  times and of the per-pair ratio. Target: fastnn <= 1.5x scikit-learn's wall time.
- first-ever compile: the same fastnn process (and a LeNet-5 ``NeuralNetClassifier`` fit) with an
  empty kernel cache (``NUMBA_CACHE_DIR`` pointed at a new folder, as on a new machine), then
  again with that cache filled.

    python benchmarks/bench_startup.py [--repeats 5] [--quick]
"""
import argparse
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
MLPClassifier(hidden_layer_sizes=(100,), max_iter=50, random_state=0).fit(X / 16.0, y)
"""

LENET_FIT = """
import sys, warnings; warnings.simplefilter("ignore")
sys.path.insert(0, {bench!r})
import bench_training as b
x, y = b.data(640)
b.FastnnRunner("lenet5", x, y, 64, 1, 1e-3).run()
"""


def wall(code, env=None):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-busy", action="store_true")
    p.add_argument("--quick", action="store_true", help="one repeat, no first-ever compile")
    p.add_argument("--out", default=str(_common.RESULTS / "startup.json"))
    args = p.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_startup", argv), "environment": env}
    fastnn_code = MLP_FIT.format(module="fastnn.sklearn")
    sklearn_code = MLP_FIT.format(module="sklearn.neural_network")
    wall(fastnn_code)  # fills the default kernel cache if it is empty

    def pairs():
        ours, theirs, ratios = [], [], []
        for _ in range(repeats):
            a, b = wall(fastnn_code), wall(sklearn_code)
            ours.append(a)
            theirs.append(b)
            ratios.append(a / b)
        return {"fastnn_s": ours, "sklearn_s": theirs, "ratio_per_pair": ratios,
                "median_ratio": statistics.median(ratios), "loadavg": _common.loadavg(),
                "met": statistics.median(ratios) <= 1.5}

    runs = _common.with_and_without_busy(pairs, busy=not args.no_busy)
    result["warm_cache"] = runs
    print("\nfresh process: import + MLPClassifier((100,), max_iter=50).fit on digits, warm cache")
    for load, r in runs.items():
        print(f"{load:>6}: fastnn {statistics.median(r['fastnn_s']):.2f} s, scikit-learn "
              f"{statistics.median(r['sklearn_s']):.2f} s, fastnn/sklearn {r['median_ratio']:.2f} "
              f"(target <= 1.5: {'PASS' if r['met'] else 'MISS'})")
    if not args.quick:
        cold = {}
        for name, code in (("mlp", fastnn_code),
                           ("lenet5", LENET_FIT.format(bench=str(Path(__file__).parent)))):
            with tempfile.TemporaryDirectory() as cache:
                e = dict(os.environ, NUMBA_CACHE_DIR=cache)
                cold[name] = {"first_ever_s": wall(code, e), "warm_s": wall(code, e)}
        result["first_compile"] = cold
        print("\nempty kernel cache (first run on a machine), then warm:")
        for name, c in cold.items():
            print(f"  {name:>6}: first {c['first_ever_s']:.1f} s, warm {c['warm_s']:.2f} s")
    return _common.finish(result, args.out)


if __name__ == "__main__":
    main()

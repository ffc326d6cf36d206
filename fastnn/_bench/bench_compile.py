"""Compile time per kernel: what a first call compiles, and for how long (Numba's event API).

Each case runs in a fresh process with an empty kernel cache (``NUMBA_CACHE_DIR`` pointed at a
new folder, as on a new machine), records every compile (``fastnn._kernels.compile_log``) and
prints the functions by their own compile time (nested compiles counted in the callee), beside
the process's wall time. Cases: the cold-start programs of ``bench_startup.py`` (``mlp``,
``cnn``) and ``fastnn warmup`` uses (``warmup-mlp``, ``warmup-cnn``, ``warmup-rnn``).

    python benchmarks/bench_compile.py [--only mlp,cnn] [--top 25]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bench_startup  # noqa: E402

_RECORD = """
import json, sys, time
from fastnn._kernels.compile_log import compile_log
t0 = time.perf_counter()
with compile_log() as log:
    exec(compile({code!r}, "<case>", "exec"))
json.dump({{"compiles": [c._asdict() for c in log], "seconds": time.perf_counter() - t0}},
          open(sys.argv[1], "w"))
"""

CASES = {"mlp": bench_startup.MLP_FIT.format(module="fastnn.sklearn"),
         "cnn": bench_startup.CNN_FIT,
         "warmup-mlp": "from fastnn.warmup_uses import warm; warm(['mlp'], verbose=False)",
         "warmup-cnn": "from fastnn.warmup_uses import warm; warm(['cnn'], verbose=False)",
         "warmup-rnn": "from fastnn.warmup_uses import warm; warm(['rnn'], verbose=False)"}


def run_case(code):
    """The compiles of ``code`` in a fresh process with an empty kernel cache, and its times."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "log.json"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", _RECORD.format(code=code), str(out)], check=True,
                       env=dict(os.environ, NUMBA_CACHE_DIR=cache), stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        data = json.loads(out.read_text())
    data["wall_s"] = wall
    return data


def summary(compiles):
    own = {}
    for c in compiles:
        s, n = own.get(c["name"], (0.0, 0))
        own[c["name"]] = (s + c["own_seconds"], n + 1)
    return sorted(((name, s, n) for name, (s, n) in own.items()), key=lambda r: -r[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="mlp,cnn", help="comma-separated cases: " + ", ".join(CASES))
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--out", default=str(_common.RESULTS / "compile.json"))
    args = p.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in CASES]
    if bad:
        p.error(f"unknown cases {bad}; choose from {', '.join(CASES)}")
    env = _common.environment()
    print(_common.format_environment(env))
    result = {**_common.run_header("bench_compile", argv), "environment": env, "cases": {}}
    for name in names:
        data = run_case(CASES[name])
        top = [c for c in data["compiles"] if c["depth"] == 0]
        total = sum(c["seconds"] for c in top)
        result["cases"][name] = {**data, "compile_s": total, "loadavg": _common.loadavg()}
        print(f"\n{name}: wall {data['wall_s']:.1f} s (fresh process, empty kernel cache), "
              f"compiling {total:.1f} s: {len(top)} kernels, {len(data['compiles'])} functions")
        for fn, s, n in summary(data["compiles"])[:args.top]:
            print(f"  {s:7.2f} s  {n:2d} sig  {fn}")
    return _common.finish(result, args.out)


if __name__ == "__main__":
    main()

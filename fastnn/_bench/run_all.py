"""Run every CPU benchmark and print the benchmark table (from a checkout, README.md shows it).

    python benchmarks/run_all.py            # full run, rewrites the table in README.md
    python benchmarks/run_all.py --quick    # tiny sizes: checks that everything runs
    fastnn bench [--quick] [--only ...]     # the same suite from an installed fastnn

The benchmarks run one after the other (two at once on two cores would time each other), each
writing its JSON into the results folder (``--out``; default ``benchmarks/results/`` of a
checkout, ``fastnn-bench-results/`` in the current folder for an installed fastnn); the table
goes to ``table.md`` there and, for a full run from a checkout, between the ``benchmark-table``
markers of README.md. Every figure is a ratio from interleaved runs in one process (medians),
quiet and beside one busy competing process, with the load average. The peers are PyTorch (CPU)
and scikit-learn: a peer that is not installed is skipped with a note.
"""
import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "benchmarks").is_dir()
RESULTS = ROOT / "benchmarks" / "results" if CHECKOUT else Path("fastnn-bench-results")
README = ROOT / "README.md"
START, END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
KERNEL_CASES = "conv2d fwd+bwd,max_pool2d fwd+bwd,adam,linear fwd+bwd"
# name -> (script, needs scikit-learn)
BENCHMARKS = {"training": ("bench_training.py", False), "estimators": ("bench_estimators.py", True),
              "predict": ("bench_predict.py", True), "startup": ("bench_startup.py", True),
              "kernels": ("bench_kernels.py", False), "graphs": ("bench_graphs.py", False)}
GRAPH_LABELS = {
    "resnet": "ResNet training (3 stages of 16/32/64 channels, 2 residual blocks each, BatchNorm; "
              "32x32x3, batch 64, Adam; samples/s)",
    "tcn": "TCN training (MNIST-1D's: 4 residual blocks of dilated causal Conv1D 64, BatchNorm; "
           "batch 64, Adam; samples/s)",
    "tabular": "tabular training (Columns: Dense beside two Embeddings, then Dense 64, 32; "
               "batch 256, Adam; samples/s)"}


def installed(module):
    """Whether ``module`` can be imported (found, without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def run(script, *flags, out):
    cmd = [sys.executable, str(HERE / script), "--out", str(out), *flags]
    print("$ " + " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=ROOT if CHECKOUT else None)
    if proc.returncode:
        raise SystemExit(f"{script} failed (exit status {proc.returncode})")
    return json.loads(Path(out).read_text())


def _x(v):
    return "-" if v is None else f"{v:.2f}x"


def _load(r):
    la = r.get("loadavg")
    return "-" if not la else f"{la[0]:.1f}"


def rows(results):
    """Table rows: (case, peer, quiet ratio, busy ratio, load, target, verdict).

    Only the benchmarks in ``results`` give rows, and only the comparisons that ran (a peer that
    was not installed gives none). The verdict is None where no target could be judged.
    """
    out = []
    tr = results.get("training")
    if tr:
        for name, label in (("lenet5", "LeNet-5 training, NeuralNetClassifier, batch 64, Adam"),
                            ("simpleconvnet", "SimpleConvNet training, batch 64, Adam")):
            r = tr["networks"].get(name)
            if not r or "ratio" not in r["quiet"]:
                continue
            busy = r.get("busy", {})
            target = f">= {r['quiet']['target']}x" + (f", busy >= {busy['target']}x"
                                                      if busy.get("target") else "")
            met = r["quiet"]["met"] and busy.get("met", True)
            out.append((label + " (img/s)", "PyTorch CPU loop", _x(r["quiet"]["ratio"]),
                        _x(busy.get("ratio")), _load(r["quiet"]), target, met))
        rss = tr.get("peak_rss_mib_lenet5")
        if rss:
            out.append(("LeNet-5 training peak RSS (MiB)", "PyTorch",
                        f"{rss['fastnn']:.0f} vs {rss['torch']:.0f}", "-", "-", "<= PyTorch",
                        rss["fastnn"] <= rss["torch"]))
    if results.get("estimators"):
        mlp = results["estimators"]["mlp"]
        quiet = {(r["data"], tuple(r["hidden_layer_sizes"])): r for r in mlp
                 if r["load"] == "quiet"}
        busy = {(r["data"], tuple(r["hidden_layer_sizes"])): r for r in mlp
                if r["load"] == "busy"}
        for key, r in quiet.items():
            b = busy.get(key)
            out.append((f"MLPClassifier fit, {key[0]}, {key[1]}, {r.get('epochs', 200)} epochs",
                        "scikit-learn", _x(r["speedup"]), _x(b and b["speedup"]), _load(r),
                        r["target"], r["met"]))
    if results.get("predict"):
        pr = results["predict"]["runs"]
        nn_quiet = pr["quiet"]["fastnn NeuralNet"]
        nn_busy = pr.get("busy", {}).get("fastnn NeuralNet")
        out.append((f"NeuralNetClassifier.predict_proba, {results['predict']['rows']:,} x 64 "
                    f"(peak extra {nn_quiet['peak_extra_mib']:.0f} MiB)", "scikit-learn MLP",
                    _x(nn_quiet["speedup_vs_sklearn"]),
                    _x(nn_busy and nn_busy["speedup_vs_sklearn"]),
                    _load(pr["quiet"]), ">= 1x, <= 100 MB", pr["quiet"]["met"]))
    if results.get("predict") and results["predict"].get("latency"):
        lat = results["predict"]["latency"]
        for name, c in lat["quiet"]["cases"].items():
            b = lat.get("busy", {}).get("cases", {}).get(name)
            out.append((f"MLPClassifier {name}, digits, (100,) (latency per call)",
                        "scikit-learn", _x(c["speedup_vs_sklearn"]),
                        _x(b and b["speedup_vs_sklearn"]), _load(lat["quiet"]), ">= 1x",
                        c["met"]))
    if results.get("startup"):
        st = results["startup"]
        first = st.get("first_ever") or {"seconds": {}}
        warm = st["warm_cache"]
        labels = {"mlp": "MLPClassifier((32,), max_iter=5) fit + predict, digits",
                  "cnn": "small CNN NeuralNetClassifier, 2 epochs, digits",
                  "demo": "fastnn demo"}
        for name, label in labels.items():
            if name not in first["seconds"]:
                continue
            target = st["targets"]["first_ever_s"].get(name)
            out.append((f"first call ever (empty kernel cache), fresh process: {label} "
                        "(seconds, lower is better)", "scikit-learn's MLP program",
                        f"{first['seconds'][name]:.1f} s vs {first['seconds']['sklearn']:.1f} s",
                        "-", _load(first), f"<= {target:.0f} s", first["met"].get(name)))
        for name, label in labels.items():
            if name not in warm["quiet"]["median_ratio"]:
                continue
            busy = warm.get("busy")
            target = st["targets"]["warm_ratio"].get(name)
            out.append((f"warm kernel cache, fresh process: {label} (wall-time ratio, lower is "
                        "better)", "scikit-learn's MLP program",
                        f"{warm['quiet']['median_ratio'][name]:.2f}",
                        "-" if not busy else f"{busy['median_ratio'][name]:.2f}",
                        _load(warm["quiet"]), "reported" if target is None else f"<= {target}",
                        None if target is None else warm["quiet"]["met"]))
    for name, res in (results.get("graphs") or {}).get("models", {}).items():
        quiet, busy = res.get("quiet", {}), res.get("busy", {})
        if quiet.get("ratio") is None:
            continue
        out.append((GRAPH_LABELS.get(name, name), "PyTorch CPU loop", _x(quiet["ratio"]),
                    _x(busy.get("ratio")), _load(quiet), f">= {quiet['target']}x",
                    quiet["ratio"] >= quiet["target"]))
    if results.get("kernels"):
        kq = {c["name"]: c for c in results["kernels"]["cases"]}
        kb = {c["name"]: c for c in results.get("kernels_busy", {}).get("cases", [])}
        for name, c in kq.items():
            peer = c.get("target", {}).get("peer")
            if peer not in ("torch", "numpy") or c["ratio"].get(peer) is None:
                continue
            b = kb.get(name)
            out.append((f"kernel {name}", {"torch": "PyTorch", "numpy": "NumPy"}[peer],
                        _x(c["ratio"].get(peer)), _x(b and b["ratio"].get(peer)),
                        "-" if not c.get("loadavg_before") else f"{c['loadavg_before'][0]:.1f}",
                        f">= {c['target']['min']}x", c["target"]["pass"]))
    return out


def _environment(results):
    for r in results.values():
        if r and "environment" in r:
            return r["environment"]
    return None


def table(results, command, notes=(), busy=True):
    env = _environment(results)
    if env:
        m = env["machine"]
        cpu = f"{m['cpu'].get('model_name')} ({', '.join(m['cpu'].get('simd', []))})"
        where = f" on {cpu}, {m['usable_cpus']} cores"
    else:
        where = ""
    lines = [f"Measured with `{command}`{where}, "
             f"{time.strftime('%Y-%m-%d')}; fastnn/peer speed ratios (> 1: fastnn faster), "
             "medians of interleaved runs in one process, "
             + ("quiet and beside one busy competing process" if busy else "quiet only")
             + "; load = 1-minute load average before the quiet run.", ""]
    lines += [f"Note: {n}" for n in notes] + ([""] if notes else [])
    lines += ["| case | peer | ratio | busy | load | target | met |",
              "|---|---|---|---|---|---|---|"]
    verdict = {True: "yes", False: "**no**", None: "n/a"}
    for case, peer, q, b, load, target, met in rows(results):
        lines.append(f"| {case} | {peer} | {q} | {b} | {load} | {target} | "
                     f"{verdict[None if met is None else bool(met)]} |")
    return "\n".join(lines) + "\n"


def update_readme(text):
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}{END}{tail}")


def add_arguments(p, cli=False):
    """The suite's options on parser ``p`` (``cli``: for ``fastnn bench``, which never rewrites
    README.md and so has no ``--no-readme``)."""
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, one repeat: checks that everything runs (the figures mean "
                        "nothing)" + ("" if cli else "; README is left alone"))
    p.add_argument("--only", default=None, metavar="NAMES",
                   help="comma-separated benchmarks to run (default: all): "
                        + ", ".join(BENCHMARKS))
    p.add_argument("--no-busy", action="store_true",
                   help="skip the runs beside a busy competing process")
    p.add_argument("--no-torch", action="store_true",
                   help="skip the PyTorch comparisons even when PyTorch is installed")
    default = (f"{RESULTS}" if CHECKOUT else f"./{RESULTS}")
    p.add_argument("--out", default=None, metavar="DIR",
                   help=f"folder for the JSON results and table.md (default: {default})")
    if not cli:
        p.add_argument("--no-readme", action="store_true",
                       help="never rewrite README.md's table (only a full run from a repository "
                            "checkout does)")
    return p


def parse_args(argv=None, prog=None, cli=False):
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__.split("\n\n")[0],
        epilog="Benchmarks: " + ", ".join(BENCHMARKS) + ". Timings mean something only on an "
               "otherwise idle machine: check the load average first.")
    add_arguments(p, cli)
    args = p.parse_args(argv)
    if cli:
        args.no_readme = True
    if args.only:
        args.only = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in args.only if s not in BENCHMARKS]
        if unknown:
            p.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return args


def main(argv=None, prog=None, command=None, cli=False):
    """Run the suite; returns the results by benchmark name. ``command`` names the command line
    in the table (default ``python benchmarks/run_all.py`` and the flags); ``cli``: called by
    ``fastnn bench`` (README.md is never rewritten)."""
    args = parse_args(argv, prog, cli)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = command or " ".join(["python benchmarks/run_all.py", *argv])
    out_dir = (Path(args.out) if args.out else RESULTS).resolve()  # the scripts run elsewhere
    out_dir.mkdir(parents=True, exist_ok=True)
    selected = args.only or list(BENCHMARKS)
    notes = []
    has_torch = not args.no_torch and installed("torch")
    if not has_torch:
        notes.append("PyTorch comparisons skipped ("
                     + ("--no-torch" if args.no_torch else "PyTorch is not installed: "
                        "pip install 'fastnn[bench]'") + ").")
    if not installed("sklearn"):
        skipped = [n for n in selected if BENCHMARKS[n][1]]
        selected = [n for n in selected if not BENCHMARKS[n][1]]
        if skipped:
            notes.append(f"scikit-learn is not installed: skipped {', '.join(skipped)}.")
    for n in notes:
        print("note: " + n, flush=True)
    common = (["--quick"] if args.quick else []) + (["--no-busy"] if args.no_busy else [])
    results = {}
    for name in selected:
        script = BENCHMARKS[name][0]
        if name == "kernels":
            flags = (["--quick"] if args.quick else []) + ([] if has_torch else ["--no-torch"])
            results["kernels"] = run(script, *flags, out=out_dir / "kernels.json")
            if not args.no_busy:
                results["kernels_busy"] = run(script, *flags, "--busy", "--only", KERNEL_CASES,
                                              out=out_dir / "kernels_busy.json")
            continue
        if name == "graphs" and not has_torch:   # its rows are ratios to PyTorch only
            continue
        flags = common + (["--no-torch"] if name == "training" and not has_torch else [])
        results[name] = run(script, *flags, out=out_dir / f"{name}.json")
    text = table(results, command, notes, busy=not args.no_busy)
    (out_dir / "table.md").write_text(text)
    print("\n" + text)
    print(f"results in {out_dir.resolve()}")
    full = not (args.quick or args.only or args.no_busy or args.no_torch or notes)
    if full and CHECKOUT and not args.no_readme:
        update_readme(text)
        print(f"updated {README}")
    return results


if __name__ == "__main__":
    main()

"""Run every CPU benchmark and regenerate the benchmark table that README.md shows.

    python benchmarks/run_all.py            # full run, rewrites the table in README.md
    python benchmarks/run_all.py --quick    # tiny sizes: checks that everything runs

The benchmarks run one after the other (two at once on two cores would time each other), each
writing its JSON under ``benchmarks/results/``; the table goes to
``benchmarks/results/table.md`` and, unless ``--quick``, between the ``benchmark-table`` markers
of README.md. Every figure is a ratio from interleaved runs in one process (medians), quiet and
beside one busy competing process, with the load average.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
README = ROOT / "README.md"
START, END = "<!-- benchmark-table:start -->", "<!-- benchmark-table:end -->"
KERNEL_CASES = "conv2d fwd+bwd,max_pool2d fwd+bwd,adam"


def run(script, *flags, out):
    cmd = [sys.executable, str(HERE / script), "--out", str(out), *flags]
    print("$ " + " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return json.loads(Path(out).read_text())


def _x(v):
    return "-" if v is None else f"{v:.2f}x"


def _load(r):
    la = r.get("loadavg")
    return "-" if not la else f"{la[0]:.1f}"


def rows(results):
    """Table rows: (case, peer, quiet ratio, busy ratio, load, target, verdict)."""
    out = []
    tr = results["training"]
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
    quiet = {(r["data"], tuple(r["hidden_layer_sizes"])): r for r in results["estimators"]["mlp"]
             if r["load"] == "quiet"}
    busy = {(r["data"], tuple(r["hidden_layer_sizes"])): r for r in results["estimators"]["mlp"]
            if r["load"] == "busy"}
    for key, r in quiet.items():
        b = busy.get(key)
        out.append((f"MLPClassifier fit, {key[0]}, {key[1]}, 200 epochs", "scikit-learn",
                    _x(r["speedup"]), _x(b and b["speedup"]), _load(r), r["target"],
                    r["met"]))
    pr = results["predict"]["runs"]
    nn_quiet = pr["quiet"]["fastnn NeuralNet"]
    nn_busy = pr.get("busy", {}).get("fastnn NeuralNet")
    out.append((f"NeuralNetClassifier.predict_proba, {results['predict']['rows']:,} x 64 "
                f"(peak extra {nn_quiet['peak_extra_mib']:.0f} MiB)", "scikit-learn MLP",
                _x(nn_quiet["speedup_vs_sklearn"]), _x(nn_busy and nn_busy["speedup_vs_sklearn"]),
                _load(pr["quiet"]), ">= 1x, <= 100 MB", pr["quiet"]["met"]))
    st = results["startup"]["warm_cache"]
    out.append(("fresh process: import + MLPClassifier fit (wall time, lower is better)",
                "scikit-learn", f"{st['quiet']['median_ratio']:.2f}",
                "-" if "busy" not in st else f"{st['busy']['median_ratio']:.2f}",
                _load(st["quiet"]), "<= 1.5", st["quiet"]["met"]))
    kq = {c["name"]: c for c in results["kernels"]["cases"]}
    kb = {c["name"]: c for c in results.get("kernels_busy", {}).get("cases", [])}
    for name, c in kq.items():
        if "target" not in c or c["target"]["peer"] != "torch":
            continue
        b = kb.get(name)
        out.append((f"kernel {name}", "PyTorch", _x(c["ratio"].get("torch")),
                    _x(b and b["ratio"].get("torch")),
                    "-" if not c.get("loadavg_before") else f"{c['loadavg_before'][0]:.1f}",
                    f">= {c['target']['min']}x", c["target"]["pass"]))
    return out


def table(results, command):
    m = results["training"]["environment"]["machine"]
    cpu = f"{m['cpu'].get('model_name')} ({', '.join(m['cpu'].get('simd', []))})"
    lines = [f"Measured with `{command}` on {cpu}, {m['usable_cpus']} cores, "
             f"{time.strftime('%Y-%m-%d')}; fastnn/peer speed ratios (> 1: fastnn faster), "
             "medians of interleaved runs in one process, quiet and beside one busy competing "
             "process; load = 1-minute load average before the quiet run.", "",
             "| case | peer | ratio | busy | load | target | met |",
             "|---|---|---|---|---|---|---|"]
    for case, peer, q, b, load, target, met in rows(results):
        lines.append(f"| {case} | {peer} | {q} | {b} | {load} | {target} | "
                     f"{'yes' if met else '**no**'} |")
    return "\n".join(lines) + "\n"


def update_readme(text):
    readme = README.read_text()
    if START not in readme or END not in readme:
        raise SystemExit(f"README.md has no {START} ... {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{text}{END}{tail}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes; README is left alone")
    args = p.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    results = {}
    results["training"] = run("bench_training.py", *quick, out=RESULTS / "training.json")
    results["estimators"] = run("bench_estimators.py", *quick, out=RESULTS / "estimators.json")
    results["predict"] = run("bench_predict.py", *quick, out=RESULTS / "predict.json")
    results["startup"] = run("bench_startup.py", *quick, out=RESULTS / "startup.json")
    results["kernels"] = run("bench_kernels.py", *quick, out=RESULTS / "kernels.json")
    results["kernels_busy"] = run("bench_kernels.py", *quick, "--busy", "--only", KERNEL_CASES,
                                  out=RESULTS / "kernels_busy.json")
    text = table(results, "python benchmarks/run_all.py" + (" --quick" if args.quick else ""))
    (RESULTS / "table.md").write_text(text)
    print("\n" + text)
    if not args.quick:
        update_readme(text)
        print(f"updated {README}")
    return results


if __name__ == "__main__":
    main()

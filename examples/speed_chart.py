"""A speed chart from the benchmark results: fastnn against its peers.

The benchmarks (``fastnn bench`` or ``python benchmarks/run_all.py``) write JSON files into
``benchmarks/results/``; this script only reads them (it runs no benchmark) and draws the speed
ratios they recorded, ``peer time / fastnn time`` (above 1: fastnn is faster):

- left, every row of the benchmark table (``fastnn._bench.run_all.rows``: training, estimators,
  prediction, start-up and kernels), quiet load;
- right, each kernel case of ``kernels.json`` against NumPy and PyTorch.

``speed_chart.png``; ``--results PATH`` picks a results folder (or one JSON file). Without any
results it prints how to produce them and saves nothing. ``--quick`` writes a tiny made-up
results file into the output folder and plots that (a test of the plotting only: its numbers
mean nothing).
"""
import argparse
import json
import re
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def fixture(folder):
    """A tiny kernels.json with made-up figures, for the smoke test."""
    cases = [{"name": name, "ratio": {"numpy": a, "torch": b},
              "target": {"peer": "torch", "min": 1.0, "pass": b >= 1.0}}
             for name, a, b in (("conv2d fwd+bwd lenet-c1", 6.0, 1.8), ("adam", 3.0, 1.2),
                                ("max_pool2d fwd+bwd", 4.0, 0.9))]
    path = Path(folder) / "kernels.json"
    path.write_text(json.dumps({"cases": cases, "config": {"quick": True}}))
    return path


def load(results):
    """{benchmark name: result} from a folder of JSON files or one file."""
    results = Path(results)
    files = sorted(results.glob("*.json")) if results.is_dir() else [results]
    out = {}
    for f in files:
        try:
            out[f.stem] = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            print(f"skipping {f}: {e}")
    return out


def table_rows(results):
    """(case, peer, ratio) from the benchmark table's rows, where the ratio is a number."""
    try:
        from fastnn._bench.run_all import rows
        out = []
        for case, peer, quiet, *_ in rows(results):
            m = re.fullmatch(r"([0-9.]+)x", str(quiet))
            if m:
                out.append((case, peer, float(m.group(1))))
        return out
    except Exception as e:  # a results file of another version: draw what can be drawn
        print(f"benchmark table rows unavailable ({type(e).__name__}: {e})")
        return []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true",
                        help="plot a tiny made-up results file (tests the plotting only)")
    parser.add_argument("--results", default=str(RESULTS),
                        help="folder of benchmark JSON files, or one file (default %(default)s)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = fixture(out) if args.quick else Path(args.results)
    results = load(source) if source.exists() else {}
    if args.quick:
        source.unlink()
    if not results:
        print(f"no benchmark results in {source}: run `fastnn bench` (or "
              "`python benchmarks/run_all.py`) first; nothing saved")
        return []
    rows = table_rows(results)
    kernel_cases = [c for c in results.get("kernels", {}).get("cases", []) if c.get("ratio")]
    if not rows and not kernel_cases:
        print(f"no speed ratios found in {source}; nothing saved")
        return []

    fig, (ax_t, ax_k) = plt.subplots(1, 2, figsize=(15, max(4.0, 0.35 * max(len(rows),
                                                                          len(kernel_cases)) + 2)))
    if rows:
        labels = [f"{case} (vs {peer})" for case, peer, _ in rows]
        ratios = [r for _, _, r in rows]
        colors = ["tab:green" if r >= 1 else "tab:red" for r in ratios]
        ax_t.barh(range(len(rows)), ratios, color=colors)
        ax_t.set_yticks(range(len(rows)), [label[:70] for label in labels], fontsize=7)
        ax_t.invert_yaxis()
    else:
        ax_t.text(0.5, 0.5, "no benchmark-table rows", ha="center", transform=ax_t.transAxes)
    ax_t.set(xscale="log", xlabel="speed ratio, peer time / fastnn time (log; > 1: fastnn faster)",
             title="Benchmark table (quiet machine)")
    ax_t.axvline(1, color="k", linewidth=0.8)
    if kernel_cases:
        peers = sorted({p for c in kernel_cases for p in c["ratio"]})
        height = 0.8 / len(peers)
        for j, peer in enumerate(peers):
            ratios = [c["ratio"].get(peer) or np.nan for c in kernel_cases]
            ax_k.barh(np.arange(len(kernel_cases)) + j * height, ratios, height=height,
                      label=f"vs {peer}")
        ax_k.set_yticks(np.arange(len(kernel_cases)) + 0.4 - height / 2,
                        [c["name"] for c in kernel_cases], fontsize=7)
        ax_k.invert_yaxis()
        ax_k.legend(fontsize=8)
    else:
        ax_k.text(0.5, 0.5, "no kernels.json", ha="center", transform=ax_k.transAxes)
    ax_k.set(xscale="log", xlabel="speed ratio, peer time / fastnn time (log; > 1: fastnn faster)",
             title="CPU kernels")
    ax_k.axvline(1, color="k", linewidth=0.8)
    for ax in (ax_t, ax_k):
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    quick = any(r.get("config", {}).get("quick") for r in results.values()
                if isinstance(r, dict))
    fig.suptitle(f"fastnn speed ratios from {source.name}"
                 + (" (--quick results: the figures mean nothing)" if quick else ""))
    fig.tight_layout()
    path = out / "speed_chart.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

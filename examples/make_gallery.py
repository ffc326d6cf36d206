"""Regenerate the gallery: run every example and copy one PNG of each to docs/images/.

    python examples/make_gallery.py            # all examples, one after the other
    python examples/make_gallery.py --only optimizers,lr_sweep
    python examples/make_gallery.py --quick    # smoke settings (quick, the pictures are poorer)

Each example runs in its own process (``python examples/NAME.py --out TMP``), timed with its
wall-clock time and the 1-minute load average, so the times are those of a fresh command line
(Numba's cache warm after the first run). The chosen figure is copied to
``docs/images/NAME.png`` and rewritten with a 128-colour palette (Pillow, which matplotlib
installs); the scripts save at 80-90 dpi, so each stays small (a warning is printed above
150 KB). ``speed_chart`` is skipped when no benchmark results exist. ``mnist1d_benchmark`` (5
models x 3 seeds, the ``mnist1d`` extra) takes about 9.5 minutes of the full run; ``--quick``
runs it for 2 epochs on 800 sequences and one seed, and ``--only`` can leave it out.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMAGES = ROOT / "docs" / "images"
# example -> the figure that goes into the gallery
CHOSEN = {
    "decision_boundaries": "decision_boundaries.png",
    "optimizers": "optimizers_paths.png",
    "lr_sweep": "lr_sweep.png",
    "weight_init": "weight_init.png",
    "batchnorm_activations": "batchnorm.png",
    "regularisation": "regularisation.png",
    "digits_cnn": "digits_cnn_errors.png",
    "cnn_filters": "cnn_filters.png",
    "sequences": "sequences_forecast.png",
    "gradcheck": "gradcheck.png",
    "grid_search": "grid_search.png",
    "dask_grid_search": "dask_grid_search.png",
    "kernels_demo": "kernels_demo.png",
    "tabular_embeddings": "tabular_embeddings.png",
    "mnist1d_benchmark": "mnist1d_results.png",   # about 9.5 minutes in full (--quick: 2 epochs)
    "speed_chart": "speed_chart.png",
    "playground_tour": "playground.png",
}


def shrink(path, colors=128):
    """Rewrite the PNG at ``path`` with an adaptive palette (about 3-4x smaller for plots)."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with matplotlib; without it keep the file as it is
        return
    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated example names")
    parser.add_argument("--quick", action="store_true", help="run the examples with --quick")
    parser.add_argument("--images", default=str(IMAGES), help="gallery folder (%(default)s)")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(CHOSEN)
    images = Path(args.images)
    images.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    report = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", tmp]
            cmd += ["--quick"] if args.quick else []
            load = os.getloadavg()[0]
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            figure = Path(tmp) / CHOSEN[name]
            if proc.returncode:
                print(proc.stdout + proc.stderr)
                raise SystemExit(f"{name} failed (exit status {proc.returncode})")
            if not figure.exists():
                print(f"{name}: {seconds:5.1f} s (load {load:.1f}), no {CHOSEN[name]}: "
                      + proc.stdout.strip().splitlines()[-1])
                continue
            target = images / f"{name}.png"
            shutil.copyfile(figure, target)
            shrink(target)
            size = target.stat().st_size / 1024
            warn = "  (over 150 KB)" if size > 150 else ""
            print(f"{name}: {seconds:5.1f} s (load {load:.1f}) -> {target} ({size:.0f} KB){warn}",
                  flush=True)
            report.append((name, seconds, load))
    return report


if __name__ == "__main__":
    main()

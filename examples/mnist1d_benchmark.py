"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"): the paper's four models, and a
temporal convolution network past human level.

The data is generated here with the ``mnist1d`` package (``pip install -e ".[mnist1d]"``): its
default arguments give the standard set, 4,000 training and 1,000 test sequences of 40 values,
10 classes; nothing is downloaded. Each model trains with ``fastnn.nn.fit`` (Adam) for three
seeds; the table reports the test accuracy (mean and spread over the seeds) and the training
time per model, beside the paper's figures:

- logistic regression (``Dense(10)``), paper 32 %;
- an MLP (two hidden layers of 100 ReLU units), paper 68 %;
- a CNN (three ``Conv1D`` of 25 channels, kernel 5, stride 2), paper 94 %;
- a GRU (one layer of 32 units, read step by step), paper 91 %;
- a TCN: dilated causal ``Conv1D`` blocks (dilation 1, 2, 4, 8) with residual connections
  (``Residual``), batch norm, global average pooling; human level is 96 %.

``mnist1d_results.png``: the table as bars (mean, spread) and the test-accuracy curves of one
seed per model. ``mnist1d_results.json``: every number.
"""
import argparse
import json
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn import nn  # noqa: E402

PAPER = {"logistic": 0.32, "MLP": 0.68, "CNN": 0.94, "GRU": 0.91, "TCN": None}
HUMAN = 0.96
SEEDS = (0, 1, 2)


def load_mnist1d(n=None):
    """The standard MNIST-1D split, generated locally (float32 x (N, 40), int64 labels)."""
    from mnist1d.data import get_dataset_args, make_dataset
    args = get_dataset_args()
    data = make_dataset(args)
    x, y = data["x"].astype(np.float32), data["y"].astype(np.int64)
    xt, yt = data["x_test"].astype(np.float32), data["y_test"].astype(np.int64)
    if n is not None:
        x, y, xt, yt = x[:n], y[:n], xt[:n // 4], yt[:n // 4]
    return x, y, xt, yt


def tcn(channels=64, dilations=(1, 2, 4, 8), seed=None):
    """A temporal convolution network: residual blocks of two dilated causal convolutions."""
    blocks = []
    for d in dilations:
        blocks.append(nn.Residual(
            nn.Conv1D(channels, 3, dilation=d, padding="causal"), nn.BatchNorm(), nn.ReLU(),
            nn.Conv1D(channels, 3, dilation=d, padding="causal"), nn.BatchNorm()))
        blocks.append(nn.ReLU())
    return nn.Sequential(nn.Reshape((1, 40)), nn.Conv1D(channels, 3, padding="causal"),
                         nn.BatchNorm(), nn.ReLU(), *blocks, nn.GlobalAvgPool1D(), nn.Dense(10),
                         seed=seed)


# The paper's recipe: Adam, learning rate 1e-2, batches of 100, 6,000 steps (150 epochs).
PAPER_FIT = dict(epochs=150, lr=1e-2, batch_size=100)
MODELS = {
    # name: (model builder, fit options)
    "logistic": (lambda s: nn.Sequential(nn.Dense(10), seed=s), PAPER_FIT),
    "MLP": (lambda s: nn.Sequential(nn.Dense(100), nn.ReLU(), nn.Dense(100), nn.ReLU(),
                                    nn.Dense(10), seed=s), PAPER_FIT),
    "CNN": (lambda s: nn.Sequential(nn.Reshape((1, 40)), nn.Conv1D(25, 5, stride=2, padding=1),
                                    nn.ReLU(), nn.Conv1D(25, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv1D(25, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Flatten(), nn.Dense(10), seed=s), PAPER_FIT),
    "GRU": (lambda s: nn.Sequential(nn.Reshape((40, 1)), nn.GRU(32), nn.Dense(10), seed=s),
            dict(epochs=40, lr=1e-2, batch_size=100)),
    "TCN": (lambda s: tcn(seed=s),
            dict(epochs=20, lr=3e-3, batch_size=64, schedule=("cosine", {"T_max": 20}),
                 weight_decay=1e-4, optimizer="adamw")),
}


class _TestAccuracy(nn.Callback):
    """The test accuracy after each epoch (for the learning curves)."""

    def __init__(self, xt, yt):
        self.xt, self.yt, self.values = xt, yt, []

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model.predict(self.xt).argmax(axis=1)
        self.values.append(float((pred == self.yt).mean()))


def run(names, seeds, quick, data):
    x, y, xt, yt = data
    results = {}
    for name in names:
        build, options = MODELS[name]
        options = dict(options, epochs=2) if quick else dict(options)
        accs, times, curve = [], [], None
        for seed in seeds:
            model = build(seed)
            curves = _TestAccuracy(xt, yt)
            start = time.perf_counter()
            nn.fit(model, x, y, seed=seed, callbacks=[curves], **options)
            times.append(time.perf_counter() - start)
            accs.append(float((model.predict(xt).argmax(axis=1) == yt).mean()))
            curve = curve or curves.values
        results[name] = {"accuracy": accs, "mean": float(np.mean(accs)),
                         "spread": float(np.max(accs) - np.min(accs)), "seconds": times,
                         "paper": PAPER[name], "curve": curve, "epochs": options["epochs"]}
        r = results[name]
        print(f"{name:9s} test accuracy {100 * r['mean']:5.1f} % (+/- {50 * r['spread']:.1f}, "
              f"{len(seeds)} seeds)  {np.mean(times):6.1f} s per model"
              + (f"   paper {100 * PAPER[name]:.0f} %" if PAPER[name] else ""))
    return results


def plot(results, path):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(results)
    means = [100 * results[n]["mean"] for n in names]
    spreads = [50 * results[n]["spread"] for n in names]
    ax.bar(names, means, yerr=spreads, color="#4C72B0", capsize=4, label="fastnn (3 seeds)")
    paper = [100 * (results[n]["paper"] or np.nan) for n in names]
    ax.scatter(names, paper, color="#DD8452", zorder=3, label="paper")
    ax.axhline(100 * HUMAN, color="grey", ls="--", lw=1, label="human 96 %")
    for i, n in enumerate(names):
        ax.text(i, means[i] + 1.5, f"{means[i]:.1f}\n{np.mean(results[n]['seconds']):.0f} s",
                ha="center", fontsize=8)
    ax.set_ylim(0, 110)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("MNIST-1D: test accuracy and training time")
    ax.legend(loc="lower right", fontsize=8)
    for n in names:
        bx.plot(np.arange(1, len(results[n]["curve"]) + 1), 100 * np.array(results[n]["curve"]),
                label=n)
    bx.axhline(100 * HUMAN, color="grey", ls="--", lw=1)
    bx.set_xlabel("epoch")
    bx.set_ylabel("test accuracy (%)")
    bx.set_title("learning curves (seed 0)")
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="2 epochs, 800 sequences, 1 seed")
    parser.add_argument("--only", default=None, help="comma-separated models: " + ",".join(MODELS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(MODELS) if args.only is None else args.only.split(",")
    data = load_mnist1d(800 if args.quick else None)
    results = run(names, SEEDS[:1] if args.quick else SEEDS, args.quick, data)
    png, js = out / "mnist1d_results.png", out / "mnist1d_results.json"
    plot(results, png)
    js.write_text(json.dumps(results, indent=1))
    print(f"saved {png} and {js}")
    return [png, js]


if __name__ == "__main__":
    main()

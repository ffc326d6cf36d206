"""Weight initialisation: activation histograms of a 5-layer network (the textbook figure).

A stack of five dense layers of 100 units each receives 1000 standard-normal inputs of 100
features; the histograms show the activations coming out of each layer at initialisation, for
four ways of drawing the weights (biases zero):

- ``N(0, 1)``: far too large. Sigmoid units saturate, their outputs pile up at 0 and 1 (where
  the slope, and so the gradient, vanishes); ReLU activations grow by a factor of about 7 per
  layer (see the standard deviations in the titles);
- ``N(0, 0.01^2)``: far too small. Sigmoid outputs all collapse onto 0.5 (every unit computes the
  same thing) and ReLU outputs shrink towards 0 layer after layer;
- Xavier (Glorot, ``std = sqrt(2 / (fan_in + fan_out))``, ``nn.init.xavier_normal``): keeps
  the sigmoid network's spread through the depth; with ReLU, which zeroes half its inputs, the
  signal still halves in variance at every layer;
- He (``std = sqrt(2 / fan_in)``, ``nn.init.he_normal``): made for ReLU; the spread stays the
  same in every layer.

``weight_init.png``: one row per initialisation, sigmoid (left five columns) and ReLU (right
five), each titled with the standard deviation of its activations; ReLU histograms leave out
the exact zeros (about half the outputs) and each has its own x-range.
``weight_init_batchnorm.png``: the same network with ``nn.BatchNorm`` between each dense layer
and its activation: every pre-activation is standardised over the batch, so all four
initialisations give the same healthy distributions.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn import nn  # noqa: E402

LAYERS, UNITS = 5, 100


def normal(std):
    def init(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
        return rng.normal(0.0, std, shape).astype(dtype)
    return init


INITS = {"N(0, 1)": normal(1.0), "N(0, 0.01\u00b2)": normal(0.01),
         "Xavier": "xavier_normal", "He": "he_normal"}
ACTIVATIONS = {"sigmoid": nn.Sigmoid, "ReLU": nn.ReLU}


def activations(init, activation, batchnorm, x):
    """The output of each of the five activation layers for the batch ``x``."""
    layers = []
    for _ in range(LAYERS):
        layers.append(nn.Dense(UNITS, kernel_initializer=init))
        layers += [nn.BatchNorm(), activation()] if batchnorm else [activation()]
    model = nn.Sequential(*layers, seed=0)
    model.build(x.shape[1:])
    outputs = []
    for layer in model.layers:
        x = layer.forward(x, training=True)
        if isinstance(layer, activation):
            outputs.append(np.asarray(x).ravel())
    return outputs


def figure(x, batchnorm, path):
    fig, axes = plt.subplots(len(INITS), 2 * LAYERS, figsize=(16, 7.5))
    for r, (init_name, init) in enumerate(INITS.items()):
        for g, (act_name, activation) in enumerate(ACTIVATIONS.items()):
            for k, a in enumerate(activations(init, activation, batchnorm, x)):
                ax = axes[r, g * LAYERS + k]
                if act_name == "ReLU":
                    a = a[a > 0]
                    hi = max(float(np.percentile(a, 99)) if a.size else 1.0, 1e-12)
                    ax.hist(a, bins=30, range=(0, hi), color="tab:orange")
                else:
                    ax.hist(a, bins=30, range=(0, 1), color="tab:blue")
                ax.set_title(f"layer {k + 1}, std {a.std() if a.size else 0:.2g}", fontsize=8)
                ax.tick_params(labelsize=6)
                ax.set_yticks([])
            axes[r, g * LAYERS].set_ylabel(init_name if g == 0 else "", fontsize=10)
    for g, act_name in enumerate(ACTIVATIONS):
        axes[-1, g * LAYERS + 2].set_xlabel(f"{act_name} output", fontsize=10)
    fig.suptitle(f"Activations of a {LAYERS}-layer, {UNITS}-unit network at initialisation"
                 + (", with BatchNorm before each activation" if batchnorm else "")
                 + ": sigmoid (blue, left), ReLU (orange, right); one row per weight init")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="a smaller batch (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(0).standard_normal((200 if args.quick else 1000, UNITS))
    x = x.astype(np.float32)
    saved = [out / "weight_init.png", out / "weight_init_batchnorm.png"]
    for batchnorm, path in zip((False, True), saved):
        figure(x, batchnorm, path)
        print(f"saved {path}")
    return saved


if __name__ == "__main__":
    main()

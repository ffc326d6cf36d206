"""Gradient checking: every layer's backward pass against central differences.

Backpropagation is only as good as each layer's ``backward``. ``fastnn.testing.gradcheck``
checks one: in float64, for a random output cotangent ``dy``, it compares the gradients that
``backward`` returns for the input and for every parameter with the central differences
``(L(w + eps) - L(w - eps)) / (2 eps)`` of ``L = sum(forward(x) * dy)``
(``fastnn.testing.numerical_gradient``), and raises if any element is off.

This script runs ``gradcheck`` on a dozen layers and, to show what it compares, computes both
gradients itself: ``gradcheck.png`` plots, left, every analytic gradient element against its
numerical estimate (all on the diagonal); right, the largest relative error per layer and
tensor, ``|analytic - numerical| / max(|analytic|, |numerical|)``, on a log scale: around 1e-8
to 1e-10 in float64, where a wrong backward would give errors near 1.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn import nn  # noqa: E402
from fastnn.testing import gradcheck, numerical_gradient  # noqa: E402


def cases(quick):
    """name -> (layer factory, input shape, training flag)."""
    seq = 3 if quick else 5
    all_cases = {
        "Dense(6)": (lambda: nn.Dense(6), (4, 5), False),
        "Conv2D(3, 3x3)": (lambda: nn.Conv2D(3, 3, padding=1), (2, 2, 5, 5), False),
        "MaxPool2D(2)": (lambda: nn.MaxPool2D(2), (2, 2, 4, 4), False),
        "AvgPool2D(2)": (lambda: nn.AvgPool2D(2), (2, 2, 4, 4), False),
        "BatchNorm (training)": (lambda: nn.BatchNorm(), (8, 5), True),
        "Tanh": (lambda: nn.Tanh(), (4, 5), False),
        "Sigmoid": (lambda: nn.Sigmoid(), (4, 5), False),
        "GELU": (lambda: nn.GELU(), (4, 5), False),
        "SimpleRNN(4)": (lambda: nn.SimpleRNN(4), (2, seq, 3), False),
        "LSTM(4)": (lambda: nn.LSTM(4), (2, seq, 3), False),
        "GRU(4)": (lambda: nn.GRU(4), (2, seq, 3), False),
        "Dense-ReLU-Dense model": (lambda: nn.Sequential(nn.Dense(6), nn.ReLU(), nn.Dense(3),
                                                         seed=0), (4, 5), False),
    }
    if quick:
        return {k: all_cases[k] for k in ("Dense(6)", "Conv2D(3, 3x3)", "BatchNorm (training)",
                                          "LSTM(4)")}
    return all_cases


def both_gradients(layer, x, training, rng):
    """[(tensor name, analytic, numerical)] for the input and every parameter."""
    layer.forward(x, training)  # builds the layer in float64
    y = np.asarray(layer.forward(x, training))
    dy = rng.standard_normal(y.shape)
    for p in layer.parameters():
        p.grad[...] = 0
    dx = np.asarray(layer.backward(dy))
    out = [("input", dx, numerical_gradient(
        lambda v: np.sum(np.asarray(layer.forward(v, training)) * dy), x))]
    for i, p in enumerate(layer.parameters()):
        analytic = np.array(p.grad, copy=True)
        original = np.array(p.data, copy=True)

        def loss(w, p=p):
            p.data[...] = w
            return np.sum(np.asarray(layer.forward(x, training)) * dy)
        numeric = numerical_gradient(loss, original)
        p.data[...] = original
        name = p.name.split(".")[-1]
        out.append((f"{name} #{i // 2 + 1}" if isinstance(layer, nn.Sequential) else name,
                    analytic, numeric))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="shorter sequences (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    fig, (ax_xy, ax_err) = plt.subplots(1, 2, figsize=(14, 6), width_ratios=[1, 1.3])
    labels, errors = [], []
    colors = plt.cm.tab20(np.linspace(0, 1, 12))
    for (name, (make, shape, training)), color in zip(cases(args.quick).items(), colors):
        x = rng.standard_normal(shape)
        assert gradcheck(make(), x, training=training)  # raises on a mismatch
        for tensor, analytic, numeric in both_gradients(make(), x, training, rng):
            ax_xy.plot(numeric.ravel(), analytic.ravel(), ".", color=color, markersize=4,
                       label=name if tensor == "input" else None)
            scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-12)
            errors.append(float(np.max(np.abs(analytic - numeric) / scale)))
            labels.append(f"{name}: {tensor}")
        print(f"gradcheck passed: {name}")
    lim = ax_xy.get_xlim()
    ax_xy.plot(lim, lim, "k-", linewidth=0.6, zorder=0)
    ax_xy.set(xlabel="numerical gradient (central differences, eps 1e-6)",
              ylabel="analytic gradient (backward)",
              title="Every gradient element of every checked tensor")
    ax_xy.legend(fontsize=7, markerscale=3)
    ypos = np.arange(len(labels))
    ax_err.barh(ypos, errors, color="tab:green")
    ax_err.set_xscale("log")
    ax_err.set_yticks(ypos, labels, fontsize=7)
    ax_err.invert_yaxis()
    ax_err.axvline(1e-4, color="tab:red", linestyle="--", label="gradcheck's rtol (1e-4)")
    ax_err.set(xlabel="largest relative error (log scale)",
               title="Largest relative error per layer and tensor (float64)")
    ax_err.legend(fontsize=8, loc="lower right")
    fig.suptitle("fastnn.testing.gradcheck: backward against central differences")
    fig.tight_layout()
    path = out / "gradcheck.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"largest relative error over all tensors: {max(errors):.2e}")
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

"""Optimizers compared: paths on f(x, y) = x^2/20 + y^2, and loss curves on a small MLP.

The fused optimizer kernels of ``fastnn.kernels`` (``sgd_step``, ``rmsprop_step``,
``adagrad_step``, ``adam_step``) update any array in place; here each one drives a two-element
parameter ``(x, y)`` downhill on the elongated bowl ``f(x, y) = x^2 / 20 + y^2`` from (-7, 2),
30 steps each (the textbook figure). The bowl is 20 times steeper along y than along x:

- plain SGD zig-zags across the steep direction and crawls along the shallow one;
- momentum builds up speed along x, overshoots and swings back (like a ball rolling in a bowl);
  Nesterov's look-ahead damps the swings;
- AdaGrad and RMSProp divide each coordinate's step by its gradient history, so the steep y
  direction gets smaller steps and the path heads almost straight for the minimum; Adam
  combines both ideas.

``optimizers_paths.png``: one panel per optimizer, its path over log-spaced contours of ``f``.
``optimizers_curves.png``: ``f`` against the step (log scale), and the training loss of the same
optimizers (through ``fastnn.nn.fit``) on an MLP classifying scikit-learn's 8x8 digits.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastnn import kernels, nn  # noqa: E402

START = (-7.0, 2.0)


def bowl(x, y):
    return x ** 2 / 20.0 + y ** 2


def bowl_grad(p):
    return np.array([p[0] / 10.0, 2.0 * p[1]])


# name -> (state buffers, one fused kernel call); the learning rate is per problem
STEPS = {
    "SGD": (0, lambda p, g, s, t, lr: kernels.sgd_step(p, g, None, lr)),
    "Momentum": (1, lambda p, g, s, t, lr: kernels.sgd_step(p, g, s[0], lr, momentum=0.9)),
    "Nesterov": (1, lambda p, g, s, t, lr: kernels.sgd_step(p, g, s[0], lr, momentum=0.9,
                                                            nesterov=True)),
    "AdaGrad": (1, lambda p, g, s, t, lr: kernels.adagrad_step(p, g, s[0], t, lr=lr)),
    "RMSProp": (1, lambda p, g, s, t, lr: kernels.rmsprop_step(p, g, s[0], lr=lr)),
    "Adam": (2, lambda p, g, s, t, lr: kernels.adam_step(p, g, s[0], s[1], t, lr=lr)),
}
#       name: (lr on the bowl, (fit optimizer, lr, options) for the MLP)
SETTINGS = {
    "SGD": (0.95, ("sgd", 0.05, {})),
    "Momentum": (0.1, ("sgd", 0.02, {"momentum": 0.9})),
    "Nesterov": (0.1, ("sgd", 0.02, {"momentum": 0.9, "nesterov": True})),
    "AdaGrad": (1.5, ("adagrad", 0.05, {})),
    "RMSProp": (0.3, ("rmsprop", 1e-3, {})),
    "Adam": (0.3, ("adam", 1e-3, {})),
}
COLORS = dict(zip(SETTINGS, plt.cm.tab10.colors))


def descend(name, grad, start, lr, steps):
    """``steps`` updates of optimizer ``name`` from ``start``; returns the (steps + 1, 2) path."""
    n_states, step = STEPS[name]
    p = np.array(start, dtype=np.float64)
    state = [np.zeros(2) for _ in range(n_states)]
    path = [p.copy()]
    for t in range(1, steps + 1):
        step(p, grad(p), state, t, lr)
        path.append(p.copy())
    return np.array(path)


def contour(ax, xlim=(-8, 8), ylim=(-3, 3)):
    xs, ys = np.meshgrid(np.linspace(*xlim, 400), np.linspace(*ylim, 300))
    levels = np.logspace(-2, 1, 10)  # log-spaced: the flat floor of the bowl gets contours too
    cs = ax.contour(xs, ys, bowl(xs, ys), levels=levels, colors="0.45", linewidths=0.7)
    ax.clabel(cs, levels[4::2], fmt="%.2g", fontsize=7)
    ax.set(xlim=xlim, ylim=ylim, xlabel="x", ylabel="y")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few steps and epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps, epochs, n = (30, 2, 300) if args.quick else (30, 30, None)
    X, y = load_digits(return_X_y=True)
    X, y = (X / 16.0).astype(np.float32)[:n], y[:n]

    fig_p, paths = plt.subplots(2, 3, figsize=(13, 6.6), sharex=True, sharey=True)
    fig_c, (ax_f, ax_mlp) = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, (name, (lr, (opt, lr_mlp, options))) in zip(paths.ravel(), SETTINGS.items()):
        color = COLORS[name]
        contour(ax)
        path = descend(name, bowl_grad, START, lr, steps)
        ax.plot(path[:, 0], path[:, 1], "o-", color=color, markersize=3, linewidth=1.2)
        ax.plot(*START, "ks", markersize=6)
        ax.plot(0, 0, "k*", markersize=12)
        ax.set_title(f"{name} (lr={lr:g}): f = {bowl(*path[-1]):.2g} after {steps} steps",
                     fontsize=10)
        ax_f.semilogy(bowl(path[:, 0], path[:, 1]), "o-", markersize=3, color=color,
                      label=f"{name} (lr={lr:g})")
        print(f"{name:9s} bowl after {steps} steps: ({path[-1, 0]:+.3f}, {path[-1, 1]:+.3f})")
        model = nn.Sequential(nn.Dense(64), nn.ReLU(), nn.Dense(10), seed=0)
        history = nn.fit(model, X, y, optimizer=opt, lr=lr_mlp, optimizer_options=options,
                         epochs=epochs, batch_size=64, seed=0)
        print(f"{name:9s} MLP final training loss: {history['loss'][-1]:.4f}")
        ax_mlp.semilogy(np.arange(1, epochs + 1), history["loss"], "o-", markersize=3,
                        color=color, label=f"{name} (lr={lr_mlp:g})")
    for ax in paths[0]:
        ax.set_xlabel("")
    for ax in paths[:, 1:].ravel():
        ax.set_ylabel("")
    fig_p.suptitle("f(x, y) = x\u00b2/20 + y\u00b2 from (-7, 2) (square) to the minimum (star); "
                   "contours log-spaced")
    fig_p.tight_layout()
    ax_f.set(xlabel="step", ylabel="f(x, y)",
             title="f(x, y) = x\u00b2/20 + y\u00b2 along each path")
    ax_mlp.set(xlabel="epoch", ylabel="training loss (cross-entropy)",
               title="MLP (64 ReLU units) on 8x8 digits, batch 64")
    for ax in (ax_f, ax_mlp):
        ax.legend(fontsize=8)
    fig_c.tight_layout()
    saved = [out / "optimizers_paths.png", out / "optimizers_curves.png"]
    for fig, path in zip((fig_p, fig_c), saved):
        fig.savefig(path, dpi=90)
        plt.close(fig)
        print(f"saved {path}")
    return saved


if __name__ == "__main__":
    main()

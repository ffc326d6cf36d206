"""Optimizers compared: paths on two 2-D test functions, and loss curves on a small MLP.

The fused optimizer kernels of ``fastnn.kernels`` (``sgd_step``, ``rmsprop_step``,
``adagrad_step``, ``adam_step``) update any array in place; here each one drives a two-element
parameter ``(x, y)`` downhill.

- A skewed quadratic bowl (condition number 20, axes rotated by 30 degrees): plain SGD zig-zags
  across the narrow direction, momentum overshoots and spirals in, Nesterov's look-ahead damps
  the overshoot, and the adaptive methods (AdaGrad, RMSProp, Adam) rescale each coordinate by its
  gradient history, so they head diagonally at first instead of straight down the steepest slope.
- The Rosenbrock function ``(1 - x)^2 + 100 (y - x^2)^2``, whose minimum (1, 1) lies at the end
  of a long, curved, flat-bottomed valley: every method falls into the valley quickly, then plain
  SGD crawls along its floor; markers every 200 steps show how fast each one travels.

``optimizers_paths.png``: one column per optimizer, its path over the contours of each function.
``optimizers_curves.png``: the function values against the step (log scale), and the training
loss of the same optimizers (through ``fastnn.nn.fit``) on an MLP classifying scikit-learn's
digits.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastnn import kernels, nn  # noqa: E402

_c, _s = np.cos(np.pi / 6), np.sin(np.pi / 6)
_R = np.array([[_c, -_s], [_s, _c]])
A = _R @ np.diag([1.0, 20.0]) @ _R.T  # the quadratic 0.5 p^T A p
Q_START = _R @ np.array([-4.0, 1.0])  # 4 units along the shallow axis, 1 along the steep one


def quadratic(x, y):
    return 0.5 * (A[0, 0] * x * x + 2 * A[0, 1] * x * y + A[1, 1] * y * y)


def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def rosenbrock_grad(p):
    x, y = p
    return np.array([-2 * (1 - x) - 400 * x * (y - x ** 2), 200 * (y - x ** 2)])


# name -> (state buffers, one fused kernel call); the learning rate is per problem
STEPS = {
    "SGD": (0, lambda p, g, s, t, lr: kernels.sgd_step(p, g, None, lr)),
    "Momentum": (1, lambda p, g, s, t, lr: kernels.sgd_step(p, g, s[0], lr, momentum=0.8)),
    "Nesterov": (1, lambda p, g, s, t, lr: kernels.sgd_step(p, g, s[0], lr, momentum=0.8,
                                                            nesterov=True)),
    "AdaGrad": (1, lambda p, g, s, t, lr: kernels.adagrad_step(p, g, s[0], t, lr=lr)),
    "RMSProp": (1, lambda p, g, s, t, lr: kernels.rmsprop_step(p, g, s[0], lr=lr)),
    "Adam": (2, lambda p, g, s, t, lr: kernels.adam_step(p, g, s[0], s[1], t, lr=lr)),
}
#       name: (quadratic lr, Rosenbrock lr, (fit optimizer, lr, options) for the MLP)
SETTINGS = {
    "SGD": (0.09, 1e-3, ("sgd", 0.02, {})),
    "Momentum": (0.02, 1e-3, ("sgd", 0.02, {"momentum": 0.9})),
    "Nesterov": (0.02, 1e-3, ("sgd", 0.02, {"momentum": 0.9, "nesterov": True})),
    "AdaGrad": (1.5, 0.5, ("adagrad", 0.05, {})),
    "RMSProp": (0.1, 1e-2, ("rmsprop", 1e-3, {})),
    "Adam": (0.3, 5e-2, ("adam", 1e-3, {})),
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


def contour(ax, f, xlim, ylim, log=False):
    xs, ys = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    z = f(xs, ys)
    ax.contour(xs, ys, np.log10(z + 1e-3) if log else np.sqrt(z), levels=20, cmap="Greys",
               linewidths=0.6)
    ax.set(xlim=xlim, ylim=ylim)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few steps and epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    q_steps, r_steps, epochs, n = (20, 200, 2, 300) if args.quick else (40, 2000, 30, None)
    X, y = load_digits(return_X_y=True)
    X, y = (X / 16.0).astype(np.float32)[:n], y[:n]

    fig_p, paths = plt.subplots(2, len(SETTINGS), figsize=(3.3 * len(SETTINGS), 6.6))
    fig_c, (ax_q, ax_r, ax_mlp) = plt.subplots(1, 3, figsize=(17, 4.8))
    for col, (name, (lr_q, lr_r, (opt, lr_mlp, options))) in enumerate(SETTINGS.items()):
        color = COLORS[name]
        top, bottom = paths[:, col]
        contour(top, quadratic, (-4.5, 1.5), (-3, 1.5))
        contour(bottom, rosenbrock, (-2, 2), (-1, 3), log=True)
        path = descend(name, lambda p: A @ p, Q_START, lr_q, q_steps)
        top.plot(path[:, 0], path[:, 1], "o-", color=color, markersize=3, linewidth=1)
        top.set_title(f"{name} (lr={lr_q:g})")
        ax_q.semilogy(quadratic(path[:, 0], path[:, 1]), "o-", markersize=3, color=color,
                      label=name)
        path = descend(name, rosenbrock_grad, (-1.5, 2.0), lr_r, r_steps)
        bottom.plot(path[:, 0], path[:, 1], "-", color=color, linewidth=1.2)
        bottom.plot(path[::200, 0], path[::200, 1], "o", color=color, markersize=4)
        bottom.set_title(f"{name} (lr={lr_r:g})")
        ax_r.semilogy(rosenbrock(path[:, 0], path[:, 1]), color=color, label=name)
        print(f"{name:9s} Rosenbrock after {r_steps} steps: ({path[-1, 0]:+.3f}, "
              f"{path[-1, 1]:+.3f})")
        for ax, target in ((top, (0, 0)), (bottom, (1, 1))):
            ax.plot(*target, "k*", markersize=12)
        model = nn.Sequential(nn.Dense(64), nn.ReLU(), nn.Dense(10), seed=0)
        history = nn.fit(model, X, y, optimizer=opt, lr=lr_mlp, optimizer_options=options,
                         epochs=epochs, batch_size=64, seed=0)
        print(f"{name:9s} MLP final training loss: {history['loss'][-1]:.4f}")
        ax_mlp.semilogy(np.arange(1, epochs + 1), history["loss"], "o-", markersize=3,
                        color=color, label=f"{name} (lr={lr_mlp:g})")
    paths[0, 0].set_ylabel(f"skewed quadratic, {q_steps} steps")
    paths[1, 0].set_ylabel(f"Rosenbrock, {r_steps} steps\n(a marker every 200)")
    fig_p.tight_layout()
    ax_q.set(xlabel="step", ylabel="f(x, y)", title="Skewed quadratic")
    ax_r.set(xlabel="step", ylabel="f(x, y)", title="Rosenbrock")
    ax_mlp.set(xlabel="epoch", ylabel="training loss",
               title="MLP (64 ReLU units) on digits, batch 64")
    for ax in (ax_q, ax_r, ax_mlp):
        ax.legend(fontsize=8)
    fig_c.tight_layout()
    saved = [out / "optimizers_paths.png", out / "optimizers_curves.png"]
    for fig, path in zip((fig_p, fig_c), saved):
        fig.savefig(path, dpi=100)
        plt.close(fig)
        print(f"saved {path}")
    return saved


if __name__ == "__main__":
    main()

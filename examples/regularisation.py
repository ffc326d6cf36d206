"""Regularisation: dropout, weight decay and early stopping on an over-parameterised network.

A network with two hidden layers of 128 ReLU units (about 17,000 weights) is fitted to only 30
noisy samples of ``sin(3x)``, for 1500 full-batch Adam steps. Without regularisation it has
far more capacity than the data justify: the training loss keeps falling towards zero while the
loss on 200 fresh validation points, after an early minimum, climbs again as the curve bends
to pass through the noise (overfitting). Three remedies:

- dropout (``nn.Dropout(0.3)`` after each hidden layer) trains an ensemble of thinned networks;
  its training loss is measured with units dropped, hence the noise in that curve;
- decoupled weight decay (AdamW, ``weight_decay=2``) shrinks every weight towards zero at
  each step, favouring smooth functions;
- early stopping (``nn.EarlyStopping``) watches the validation loss, stops after 100 epochs
  without improvement and restores the best weights. (It picks the epoch with the validation
  set, so a score meant to be unbiased would need a third, untouched set.)

Figure ``regularisation.png``: top, each fitted curve against the true function and the data
(the unregularised one swings far outside the data between two close training points); bottom,
the training and validation losses per epoch (log scale): each remedy keeps the validation loss
near its minimum instead of letting it climb.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn import nn  # noqa: E402

NOISE = 0.3


def target(x):
    return np.sin(3 * x)


def make_data(n, rng):
    x = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    return x, (target(x) + rng.normal(0, NOISE, x.shape)).astype(np.float32)


def network(dropout=0.0):
    layers = []
    for _ in range(2):
        layers += [nn.Dense(128), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers, nn.Dense(1), seed=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs = 40 if args.quick else 1500

    rng = np.random.default_rng(0)
    x_train, y_train = make_data(30, rng)
    x_val, y_val = make_data(200, rng)
    stopper = nn.EarlyStopping("val_loss", patience=max(epochs // 15, 2),
                               restore_best_weights=True)
    runs = {  # title: (model, extra fit arguments)
        "no regularisation": (network(), {}),
        "dropout 0.3": (network(dropout=0.3), {}),
        "weight decay 2 (AdamW)": (network(), {"optimizer": "adamw", "weight_decay": 2.0}),
        "early stopping": (network(), {"callbacks": [stopper]}),
    }
    grid = np.linspace(-1, 1, 400, dtype=np.float32)[:, None]
    fig, axes = plt.subplots(2, len(runs), figsize=(15, 7), sharey="row")
    for (title, (model, extra)), (top, bottom) in zip(runs.items(), axes.T):
        history = nn.fit(model, x_train, y_train, loss="mse", lr=3e-3, epochs=epochs,
                         batch_size=len(x_train), validation_data=(x_val, y_val), seed=0,
                         **extra)
        val = nn.evaluate(model, x_val, y_val, loss="mse")["loss"]
        print(f"{title:24s} epochs run {len(history):5d}, final validation MSE {val:.3f}")
        top.scatter(x_val[:, 0], y_val[:, 0], s=8, color="0.75", label="validation data")
        top.scatter(x_train[:, 0], y_train[:, 0], s=18, color="k", label="training data")
        top.plot(grid[:, 0], target(grid[:, 0]), "--", color="tab:green", label="sin(3x)")
        top.plot(grid[:, 0], nn.predict(model, grid)[:, 0], color="tab:red", label="network")
        top.set_title(f"{title}\nvalidation MSE {val:.3f} (noise floor {NOISE ** 2:.2f})")
        top.set(ylim=(-2, 2), xlabel="x")
        epochs_run = np.arange(1, len(history) + 1)
        bottom.semilogy(epochs_run, history["loss"], label="training loss")
        bottom.semilogy(epochs_run, history["val_loss"], label="validation loss")
        bottom.axhline(NOISE ** 2, color="0.5", linestyle=":", label="noise variance")
        if extra.get("callbacks"):
            bottom.axvline(stopper.best_epoch + 1, color="tab:red", linestyle="--",
                           label="restored epoch")
        bottom.set(xlabel="epoch", xlim=(0, epochs + 1))  # one x-range for every panel
    axes[0, 0].legend(fontsize=8, loc="lower right")
    axes[1, 0].legend(fontsize=8)
    axes[1, -1].legend(fontsize=8)  # the restored epoch
    axes[1, 0].set_ylabel("mean squared error")
    axes[0, 0].set_ylabel("y")
    fig.suptitle("30 noisy samples, a 128-128 ReLU network, 1500 full-batch Adam steps"
                 if not args.quick else "quick run")
    fig.tight_layout()
    path = out / "regularisation.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

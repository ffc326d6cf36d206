"""The learning rate: too small, about right, too large.

The same MLP (64 ReLU units) is trained on scikit-learn's 8x8 digits with plain SGD (batch 64)
for a range of learning rates, from the same initial weights:

- too small (1e-3): every step is safe but tiny; after 20 epochs the loss has barely moved;
- about right (around 0.1 to 0.3): the loss falls fast and keeps falling;
- too large: at 1 the steps overshoot and the loss jumps up and down; at 2 and above the first
  steps throw the ReLU units into their flat region, where they stay (the loss sits at
  ln 10 = 2.3, chance level). Larger still, the loss can overflow: ``fit`` then raises
  ``nn.DivergenceError``, and the curve would end with a cross.

``lr_sweep.png``: left, the training loss per epoch for each learning rate (log scale); right,
the final loss against the learning rate (both log scales): the familiar U, whose floor is the
range to use.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastnn import nn  # noqa: E402

RATES = [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 2.0, 4.0]
SHOWN = {1e-3: "too small", 0.3: "about right", 4.0: "too large"}


def train(X, y, lr, epochs):
    """Per-epoch training losses, and whether training diverged."""
    losses = []
    record = nn.LambdaCallback(lambda epoch, logs: losses.append(logs["loss"]))
    model = nn.Sequential(nn.Dense(64), nn.ReLU(), nn.Dense(10), seed=0)
    try:
        nn.fit(model, X, y, optimizer="sgd", lr=lr, epochs=epochs, batch_size=64, seed=0,
               callbacks=[record])
    except nn.DivergenceError:
        return losses, True
    return losses, False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs, n = (3, 400) if args.quick else (20, None)
    X, y = load_digits(return_X_y=True)
    X, y = (X / 16.0).astype(np.float32)[:n], y[:n]

    fig, (ax_curve, ax_u) = plt.subplots(1, 2, figsize=(14, 4.8))
    colors = plt.cm.viridis(np.linspace(0, 0.95, len(RATES)))
    finals = []
    for lr, color in zip(RATES, colors):
        losses, diverged = train(X, y, lr, epochs)
        label = f"lr={lr:g}" + (f" ({SHOWN[lr]})" if lr in SHOWN else "")
        wide = 2.5 if lr in SHOWN else 1.0
        epochs_run = np.arange(1, len(losses) + 1)
        ax_curve.semilogy(epochs_run, losses, "o-", color=color, markersize=3, linewidth=wide,
                          label=label + (", diverged" if diverged else ""))
        if diverged:
            ax_curve.plot(len(losses) + 1, 3.0, "x", color=color, markersize=10, mew=2)
        final = losses[-1] if losses and not diverged else np.nan
        finals.append(final)
        print(f"lr={lr:<6g} " + (f"diverged after {len(losses)} epochs" if diverged
                                 else f"final training loss {final:.4f}"))
    ax_curve.set(xlabel="epoch", ylabel="training loss (cross-entropy)", xlim=(0.5, epochs + 1.5),
                 title="SGD on digits, MLP with 64 ReLU units, batch 64")
    ax_curve.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    finals = np.array(finals)
    ok = np.isfinite(finals)
    ax_u.loglog(np.array(RATES)[ok], finals[ok], "o-", color="k")
    for lr in np.array(RATES)[~ok]:
        ax_u.axvline(lr, color="tab:red", linestyle=":", label="diverged")
    for lr, note in SHOWN.items():
        i = RATES.index(lr)
        if ok[i]:
            ax_u.annotate(note, (lr, finals[i]), textcoords="offset points",
                          xytext=(-70 if lr == RATES[-1] else 5, 8))
    ax_u.set(xlabel="learning rate", ylabel=f"training loss after {epochs} epochs",
             title="Final loss against the learning rate")
    if (~ok).any():
        handles, labels = ax_u.get_legend_handles_labels()
        ax_u.legend(handles[:1], labels[:1], fontsize=8)
    fig.tight_layout()
    path = out / "lr_sweep.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

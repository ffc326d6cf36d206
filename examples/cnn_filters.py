"""What the first convolution learns: filters before and after training on oriented bars.

A generated task where the answer is in the local structure: each 16x16 image holds one bright
bar (random position, length and thickness, plus noise), in one of four orientations (0, 45, 90
or 135 degrees); the network must name the orientation. The model is deliberately small,
``Conv2D(8, 5x5) -> ReLU -> GlobalAvgPool2D -> Dense(4)``: after the global average, each
filter can only report *how much* of its pattern the image contains, so to solve the task the
filters must become oriented bar and edge detectors.

``cnn_filters.png``: top, one example per class; middle, the eight 5x5 filters at
initialisation (random noise) and after training (oriented strokes and edges, red positive,
blue negative, each filter on its own symmetric colour scale); bottom, one test image with the
ReLU feature maps of three trained filters, and the training and validation accuracy per epoch.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn import nn  # noqa: E402

SIZE, ANGLES = 16, (0, 45, 90, 135)


def bars(n, rng):
    """``n`` images (n, 1, 16, 16) of one noisy bar each, and the orientation class 0..3."""
    labels = rng.integers(0, len(ANGLES), n)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    images = np.empty((n, 1, SIZE, SIZE), np.float32)
    for i, k in enumerate(labels):
        theta = np.deg2rad(ANGLES[k]) + rng.normal(0, 0.08)
        cx, cy = rng.uniform(4, SIZE - 4, 2)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)     # along the bar
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)    # across it
        half_len, width = rng.uniform(3, 7), rng.uniform(0.6, 1.4)
        bar = np.exp(-0.5 * (v / width) ** 2) * (np.abs(u) < half_len)
        images[i, 0] = bar + rng.normal(0, 0.25, bar.shape)
    return images, labels


def network():
    return nn.Sequential(nn.Conv2D(8, 5, padding=2), nn.ReLU(), nn.GlobalAvgPool2D(),
                         nn.Dense(len(ANGLES)), seed=1)


def show_filters(axes, weights, label):
    for ax, w in zip(axes, weights[:, 0]):
        m = np.abs(w).max()
        ax.imshow(w, cmap="RdBu_r", vmin=-m, vmax=m)
        ax.set(xticks=[], yticks=[])
    axes[0].set_ylabel(label, fontsize=10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few samples and epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n_train, epochs = (256, 2) if args.quick else (2000, 12)
    rng = np.random.default_rng(0)
    X, y = bars(n_train, rng)
    X_val, y_val = bars(500, rng)

    model = network()
    model.build(X.shape[1:])
    before = np.array(model[0].weight.data, copy=True)
    history = nn.fit(model, X, y, optimizer="adam", lr=1e-2, batch_size=32, epochs=epochs,
                     validation_data=(X_val, y_val), seed=0)
    after = np.asarray(model[0].weight.data)
    print(f"validation accuracy after {epochs} epochs: {history['val_accuracy'][-1]:.3f}")

    fig = plt.figure(figsize=(10, 7))
    grid = fig.add_gridspec(4, 8, height_ratios=[1, 1, 1, 1.3])
    for k, angle in enumerate(ANGLES):
        ax = fig.add_subplot(grid[0, 2 * k:2 * k + 2])
        ax.imshow(X[np.flatnonzero(y == k)[0], 0], cmap="gray")
        ax.set(xticks=[], yticks=[], title=f"class {k}: {angle} degrees")
    show_filters([fig.add_subplot(grid[1, j]) for j in range(8)], before, "before\ntraining")
    show_filters([fig.add_subplot(grid[2, j]) for j in range(8)], after, "after\ntraining")
    image = X_val[:1]
    maps = model[1].forward(model[0].forward(image))[0]
    ax = fig.add_subplot(grid[3, 0])
    ax.imshow(image[0, 0], cmap="gray")
    ax.set(xticks=[], yticks=[], title="test image")
    for j in range(3):
        ax = fig.add_subplot(grid[3, j + 1])
        ax.imshow(maps[j], cmap="magma")
        ax.set(xticks=[], yticks=[], title=f"filter {j + 1} map")
    ax = fig.add_subplot(grid[3, 4:])
    epochs_run = np.arange(1, len(history) + 1)
    ax.plot(epochs_run, history["accuracy"], "o-", markersize=3, label="training")
    ax.plot(epochs_run, history["val_accuracy"], "o-", markersize=3, label="validation")
    ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.suptitle("Conv2D(8, 5x5) -> ReLU -> global average -> Dense(4) on oriented bars: "
                 "first-layer filters (red +, blue -)", fontsize=11)
    fig.tight_layout()
    path = out / "cnn_filters.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

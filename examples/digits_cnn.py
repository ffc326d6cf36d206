"""A LeNet-style convolutional network on scikit-learn's 8x8 handwritten digits.

Two blocks of convolution -> ReLU -> max-pooling turn each 8x8 image into 24 feature maps of
2x2, and two dense layers classify them. The network trains with Adam through ``fastnn.nn.fit``
while a held-out quarter of the data measures how well it generalises.

``digits_cnn_training.png``: training and validation loss and accuracy per epoch (training
accuracy reaches 100% while validation accuracy levels off a little lower: mild overfitting).
``digits_cnn_errors.png``: the confusion matrix on the held-out digits (scikit-learn's
``ConfusionMatrixDisplay``), and the predictions the network is least sure of: the errors are
among them, and many are ambiguous even to a person. (``cnn_filters.py`` shows what first-layer
filters learn on larger images.)
"""
import argparse
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from fastnn import nn  # noqa: E402


def lenet():
    return nn.Sequential(
        nn.Conv2D(12, 5, padding=2), nn.ReLU(), nn.MaxPool2D(2),   # 12 x 4 x 4
        nn.Conv2D(24, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2),   # 24 x 2 x 2
        nn.Flatten(), nn.Dense(64), nn.ReLU(), nn.Dense(10),
        seed=0)


def plot_training(history, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    epochs = np.arange(1, len(history) + 1)
    for ax, key, label in zip(axes, ("loss", "accuracy"), ("cross-entropy loss", "accuracy")):
        ax.plot(epochs, history[key], "o-", markersize=3, label="training")
        ax.plot(epochs, history["val_" + key], "o-", markersize=3, label="validation")
        ax.set(xlabel="epoch", ylabel=label)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle("LeNet-style CNN on 8x8 digits: learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_errors(images, y_true, proba, path, shown=18):
    y_pred = proba.argmax(axis=1)
    hardest = np.argsort(proba.max(axis=1))[:shown]  # the least confident predictions
    fig = plt.figure(figsize=(14, 5.5))
    grid = fig.add_gridspec(3, 8, width_ratios=[5, 0.6] + [1] * 6)
    ax = fig.add_subplot(grid[:, 0])
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=range(10), ax=ax,
                                            cmap="Blues", colorbar=False)
    ax.set_title(f"Confusion matrix: {np.sum(y_true != y_pred)} errors in {len(y_true)} "
                 f"({np.mean(y_true == y_pred):.1%} correct)", fontsize=10)
    ax.set(xlabel="predicted digit", ylabel="true digit")
    for k, i in enumerate(hardest):
        ax = fig.add_subplot(grid[k // 6, 2 + k % 6])
        ax.imshow(images[i, 0], cmap="gray_r")
        ax.set(xticks=[], yticks=[])
        wrong = y_pred[i] != y_true[i]
        ax.set_title(f"{y_true[i]} -> {y_pred[i]} ({proba[i].max():.0%})", fontsize=9,
                     color="crimson" if wrong else "black")
    fig.suptitle("Held-out digits: confusion matrix, and the least confident predictions "
                 "(true -> predicted (confidence); errors in red)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few samples and epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs, n = (2, 400) if args.quick else (15, None)

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)[:n]
    X_train, X_test, y_train, y_test = train_test_split(X, y[:n], test_size=0.25,
                                                        random_state=0, stratify=y[:n])
    model = lenet()
    start = time.perf_counter()
    history = nn.fit(model, X_train, y_train, optimizer="adam", lr=2e-3, batch_size=32,
                     epochs=epochs, validation_data=(X_test, y_test), seed=0, verbose=1)
    print(f"trained {nn.parameter_count(model)} parameters in {time.perf_counter() - start:.1f} s")
    logits = nn.predict(model, X_test)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    print(f"test accuracy: {np.mean(proba.argmax(axis=1) == y_test):.3f}")

    saved = [out / f"digits_cnn_{name}.png" for name in ("training", "errors")]
    plot_training(history, saved[0])
    plot_errors(X_test, y_test, proba, saved[1])
    for path in saved:
        print(f"saved {path}")
    return saved


if __name__ == "__main__":
    main()

"""Activation functions, and how batch normalisation keeps a deep network trainable.

``activations.png``: the activation functions of ``fastnn.kernels`` and their derivatives, each
computed by the kernels themselves (``relu(x)``, and ``relu_backward(ones, x)`` for the slope).
ReLU's slope is 0 or 1; leaky ReLU keeps a small slope for negative inputs; ELU and GELU are
smooth; sigmoid and tanh saturate, so their slopes vanish for large inputs.

``batchnorm.png``: a deep tanh network (10 hidden layers of 64 units) on scikit-learn's digits,
its weights drawn with a badly chosen scale, ``N(0, gain^2 / fan_in)``:

- gain 0.5, too small: every layer shrinks the signal, the activations collapse towards 0
  layer after layer, the gradients are tiny, and SGD sits on a plateau for many epochs;
- gain 3, too large: the tanh units saturate at -1 and +1 and the gradients grow towards the
  input layers;
- with ``nn.BatchNorm`` between each dense layer and its tanh, every pre-activation is
  standardised over the batch, so both scales give the same healthy distribution in every layer,
  gradients of similar size in every layer, and fast training.

Top: the distribution of each layer's activations at initialisation (one violin per layer).
Bottom: the gradient norm of each layer's weights at initialisation, and the training loss.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from fastnn import kernels, nn  # noqa: E402

ACTIVATIONS = {
    "relu": (kernels.relu, kernels.relu_backward, ()),
    "leaky_relu (0.1)": (kernels.leaky_relu, kernels.leaky_relu_backward, (0.1,)),
    "elu": (kernels.elu, kernels.elu_backward, ()),
    "gelu": (kernels.gelu, kernels.gelu_backward, ()),
    "sigmoid": (kernels.sigmoid, kernels.sigmoid_backward, ()),
    "tanh": (kernels.tanh, kernels.tanh_backward, ()),
}
DEPTH = 10


def plot_activations(path):
    x = np.linspace(-4, 4, 801, dtype=np.float32)
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    for ax, (name, (f, f_backward, args)) in zip(axes.ravel(), ACTIVATIONS.items()):
        ax.axhline(0, color="0.6", linewidth=0.6)
        ax.axvline(0, color="0.6", linewidth=0.6)
        ax.plot(x, f(x, *args), label="f(x)")
        ax.plot(x, f_backward(np.ones_like(x), x, *args), "--", label="f'(x)")
        ax.set(title=name, ylim=(-1.3, 2.3))
    axes[0, 0].legend()
    for ax in axes[1]:
        ax.set_xlabel("x")
    fig.suptitle("Activation functions (solid) and their derivatives (dashed), from the kernels")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scaled_normal(gain):
    def init(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
        return rng.normal(0.0, gain / np.sqrt(shape[1]), shape).astype(dtype)
    return init


def deep_tanh(gain, batchnorm):
    layers = []
    for _ in range(DEPTH):
        layers += [nn.Dense(64, kernel_initializer=scaled_normal(gain))]
        layers += [nn.BatchNorm(), nn.Tanh()] if batchnorm else [nn.Tanh()]
    return nn.Sequential(*layers, nn.Dense(10), seed=0)


def inspect(model, x, y):
    """Activations after each tanh, and each dense layer's weight-gradient norm, for one batch."""
    activations = []
    for layer in model.layers:
        x = layer.forward(x, training=True)
        if isinstance(layer, nn.Tanh):
            activations.append(np.asarray(x).ravel())
    _, dlogits = kernels.softmax_cross_entropy(x, y)
    model.zero_grad()
    model.backward(dlogits)
    grads = [np.linalg.norm(layer.weight.grad) for layer in model.layers[:-1]
             if isinstance(layer, nn.Dense)]
    return activations, grads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="few epochs (smoke run)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    epochs, n = (1, 300) if args.quick else (15, None)
    saved = [out / "activations.png", out / "batchnorm.png"]
    plot_activations(saved[0])

    X, y = load_digits(return_X_y=True)
    X = ((X - X.mean(axis=0)) / (X.std(axis=0) + 1e-6)).astype(np.float32)[:n]
    y = y[:n]
    fig, axes = plt.subplots(2, 4, figsize=(18, 8))
    ax_grad = plt.subplot2grid((2, 4), (1, 0), colspan=2, fig=fig)
    ax_loss = plt.subplot2grid((2, 4), (1, 2), colspan=2, fig=fig)
    for ax in axes[1]:
        ax.remove()
    for i, (gain, bn) in enumerate([(0.5, False), (0.5, True), (3.0, False), (3.0, True)]):
        label = f"gain {gain}" + (", BatchNorm" if bn else "")
        model = deep_tanh(gain, bn)
        model.build(X.shape[1:])
        activations, grads = inspect(model, X[:256], y[:256])
        ax = axes[0, i]
        ax.violinplot(activations, showextrema=False)
        ax.set(ylim=(-1.05, 1.05), xlabel="layer", title=label, xticks=range(1, DEPTH + 1))
        style = "o-" if bn else "s--"
        ax_grad.semilogy(range(1, DEPTH + 1), grads, style, label=label)
        history = nn.fit(model, X, y, optimizer="sgd", lr=0.01,
                         optimizer_options={"momentum": 0.9}, epochs=epochs, batch_size=64,
                         seed=0)
        print(f"{label:22s} final training loss {history['loss'][-1]:.3f}, "
              f"accuracy {history['accuracy'][-1]:.3f}")
        ax_loss.plot(range(1, epochs + 1), history["loss"], style, label=label)
    axes[0, 0].set_ylabel("tanh output at initialisation")
    ax_grad.set(xlabel="layer", ylabel="||dL/dW|| at initialisation",
                title="Weight-gradient norm per layer", xticks=range(1, DEPTH + 1))
    ax_loss.set(xlabel="epoch", ylabel="training loss",
                title="Training (SGD, lr 0.01, momentum 0.9, batch 64)")
    for ax in (ax_grad, ax_loss):
        ax.legend()
    fig.suptitle(f"A {DEPTH}-layer tanh network on digits, weights ~ N(0, gain^2 / fan_in)")
    fig.tight_layout()
    fig.savefig(saved[1], dpi=100)
    plt.close(fig)
    for path in saved:
        print(f"saved {path}")
    return saved


if __name__ == "__main__":
    main()

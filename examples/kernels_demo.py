"""Calling fastnn's kernels directly: edge filters and pooling on an image.

``fastnn.kernels`` exposes the jitted functions the layers are built from, on plain NumPy
arrays, with ``torch.nn.functional`` semantics (``x`` is ``(N, C, H, W)``, ``w`` is
``(out_channels, in_channels, kh, kw)``). Here they process one greyscale image (scikit-learn's
sample photo; a digit enlarged to 64x64 if it cannot be loaded):

- ``kernels.conv2d`` with four hand-made 3x3 filters at once: Sobel x (vertical edges), Sobel y
  (horizontal edges), a Laplacian (edges in every direction) and a box blur, then
  ``kernels.relu`` keeping the positive responses;
- ``kernels.max_pool2d`` and ``kernels.avg_pool2d`` with 4x4 windows: max pooling keeps the
  strongest edge response in each window (the edges survive the 4x smaller image), average
  pooling smooths them out.

``kernels_demo.png``: top, the image, the four filters and the four conv2d outputs; bottom, the
magnitude of the gradient ``sqrt(gx^2 + gy^2)``, and both poolings of the ReLU Sobel-x response.
"""
import argparse
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn import kernels  # noqa: E402

FILTERS = {
    "Sobel x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "Sobel y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "Laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "box blur": [[1 / 9] * 3] * 3,
}


def load_image(size):
    try:
        from sklearn.datasets import load_sample_image
        rgb = load_sample_image("china.jpg").astype(np.float32) / 255.0
        grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        step = max(1, grey.shape[0] // size)
        return grey[::step, ::step][:size, :size * 3 // 2], "scikit-learn sample photo"
    except Exception:  # PIL missing: a digit, enlarged
        from sklearn.datasets import load_digits
        digit = load_digits().images[0].astype(np.float32) / 16.0
        return np.kron(digit, np.ones((8, 8), np.float32)), "8x8 digit, enlarged"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "out"))
    parser.add_argument("--quick", action="store_true", help="a smaller image")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    image, source = load_image(96 if args.quick else 240)
    x = np.ascontiguousarray(image[None, None])                   # (1, 1, H, W)
    w = np.array(list(FILTERS.values()), np.float32)[:, None]     # (4, 1, 3, 3)
    y = np.asarray(kernels.conv2d(x, w, padding=1))               # (1, 4, H, W)
    positive = np.asarray(kernels.relu(y))
    maxed = kernels.max_pool2d(positive, 4)  # (output, argmax indices for the backward pass)
    maxed = np.asarray(maxed[0] if isinstance(maxed, tuple) else maxed)
    averaged = kernels.avg_pool2d(positive, 4)
    averaged = np.asarray(averaged[0] if isinstance(averaged, tuple) else averaged)
    print(f"image {image.shape} ({source}); conv2d -> {y.shape}, max_pool2d(4) -> {maxed.shape}")

    fig, axes = plt.subplots(2, 5, figsize=(15, 6))
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"input {image.shape[1]}x{image.shape[0]}", fontsize=10)
    for k, name in enumerate(FILTERS):
        ax = axes[0, k + 1]
        m = np.percentile(np.abs(y[0, k]), 99) if name != "box blur" else None
        ax.imshow(y[0, k], cmap="gray" if name == "box blur" else "RdBu_r",
                  vmin=None if m is None else -m, vmax=m)
        ax.set_title(f"conv2d: {name}", fontsize=10)
        inset = ax.inset_axes((0.0, 0.0, 0.25, 0.25))
        inset.imshow(w[k, 0], cmap="RdBu_r", vmin=-2, vmax=2)
        inset.set(xticks=[], yticks=[])
    magnitude = np.hypot(y[0, 0], y[0, 1])
    panels = [(magnitude, "gradient magnitude\nsqrt(Sobel x\u00b2 + Sobel y\u00b2)", "magma"),
              (positive[0, 0], "relu(Sobel x)", "magma"),
              (maxed[0, 0], f"max_pool2d(relu(Sobel x), 4)\n{maxed.shape[3]}x{maxed.shape[2]}",
               "magma"),
              (averaged[0, 0], f"avg_pool2d(relu(Sobel x), 4)\n{averaged.shape[3]}x"
               f"{averaged.shape[2]}", "magma")]
    for ax, (data, title, cmap) in zip(axes[1], panels):
        ax.imshow(data, cmap=cmap, vmin=0, vmax=np.percentile(data, 99.5))
        ax.set_title(title, fontsize=10)
    axes[1, 4].axis("off")
    axes[1, 4].text(0, 0.5, "top row: red = positive response,\nblue = negative; the inset "
                    "in each\ncorner is the 3x3 filter\n\nbottom row: bright = strong\nresponse "
                    "(colours clipped at\nthe 99.5th percentile)",
                    fontsize=10, va="center", transform=axes[1, 4].transAxes)
    for ax in axes.ravel():
        ax.set(xticks=[], yticks=[])
    fig.suptitle("fastnn.kernels on NumPy arrays: conv2d with hand-made filters, relu, "
                 "max_pool2d, avg_pool2d")
    fig.tight_layout()
    path = out / "kernels_demo.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"saved {path}")
    return [path]


if __name__ == "__main__":
    main()

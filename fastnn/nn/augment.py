"""Batch augmentation for ``fit(augment=...)``: ``RandomShift``, ``RandomFlip``, ``Compose``; each
step is ``f(batch, rng) -> batch`` on a private host copy of the batch."""
import numbers

import numpy as np


class RandomShift:
    """Shift each image of an (N, C, H, W) batch by up to ``max_shift`` pixels along H and W.

    Shifts are drawn uniformly from ``[-max_shift, max_shift]`` per image and axis; uncovered
    pixels take ``fill``.
    """

    def __init__(self, max_shift=2, fill=0.0):
        if not isinstance(max_shift, numbers.Integral) or max_shift < 0:
            raise ValueError(f"max_shift must be an int >= 0, got {max_shift!r}")
        self.max_shift = int(max_shift)
        self.fill = float(fill)

    def __call__(self, x, rng):
        if x.ndim != 4:
            raise ValueError(f"RandomShift expects (N, C, H, W) batches, got shape {x.shape}")
        s = self.max_shift
        n, _, h, w = x.shape
        shifts = rng.integers(-s, s + 1, size=(n, 2))
        if s == 0:
            return x
        out = np.full_like(x, self.fill)
        for i in range(n):
            dy, dx = int(shifts[i, 0]), int(shifts[i, 1])
            if abs(dy) >= h or abs(dx) >= w:
                continue
            out[i, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                x[i, :, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        return out

    def __repr__(self):
        return f"RandomShift(max_shift={self.max_shift})"


class RandomFlip:
    """Mirror images of an (N, C, H, W) batch with probability ``p``: left-right
    (``horizontal=True``) and/or top-bottom (``vertical=True``), independently per image."""

    def __init__(self, horizontal=True, vertical=False, p=0.5):
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        self.horizontal = bool(horizontal)
        self.vertical = bool(vertical)
        self.p = float(p)

    def __call__(self, x, rng):
        if x.ndim != 4:
            raise ValueError(f"RandomFlip expects (N, C, H, W) batches, got shape {x.shape}")
        n = x.shape[0]
        if self.horizontal:
            flip = rng.random(n) < self.p
            x[flip] = x[flip][..., ::-1]
        if self.vertical:
            flip = rng.random(n) < self.p
            x[flip] = x[flip][..., ::-1, :]
        return x

    def __repr__(self):
        return f"RandomFlip(horizontal={self.horizontal}, vertical={self.vertical}, p={self.p})"


class Compose:
    """Apply augmentations in order: each is ``f(batch, rng) -> batch``."""

    def __init__(self, steps):
        self.steps = list(steps)
        for f in self.steps:
            if not callable(f):
                raise TypeError(f"augmentations must be callables f(batch, rng), got {f!r}")

    def __call__(self, x, rng):
        for f in self.steps:
            x = f(x, rng)
        return x


def augmenter(augment):
    if augment is None:
        return None
    if isinstance(augment, (list, tuple)):
        return Compose(augment) if augment else None
    if not callable(augment):
        raise TypeError(f"augment must be a callable f(batch, rng) or a list of them, "
                        f"got {augment!r}")
    return augment


# --- metrics -------------------------------------------------------------------------------------

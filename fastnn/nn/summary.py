"""``summary(model)``: every layer of a model with its output shape and parameter count.

A layer made of others says how through ``summary_paths(x)``: a ``Sequential`` one unnamed chain,
a container (``graph``) its named paths, each listed indented under it.
"""
import numpy as np

from . import _array

__all__ = ["summary"]


def _trace(layer, x, depth, rows):
    """Run ``layer`` on ``x`` (one sample), appending ``(depth, name, output shape, parameters)``
    for it and, indented, for what it is made of; returns its output."""
    count = sum(p.size for p in layer.parameters())
    paths = layer.summary_paths(x)
    if paths is None:
        y = layer.forward(x, training=False)
        rows.append((depth, type(layer).__name__, tuple(y.shape[1:]), count))
        return y
    at = len(rows)
    rows.append(None)
    for label, layers, xi in paths:
        inner = depth + 1
        if label is not None:
            rows.append((depth + 1, label, None, None))
            inner += 1
        for child in layers:
            xi = _trace(child, xi, inner, rows)
    chain = len(paths) == 1 and paths[0][0] is None
    y = xi if chain else layer.forward(x, training=False)
    rows[at] = (depth, type(layer).__name__, tuple(y.shape[1:]), count)
    return y


def summary(model, input_shape=None):
    """A table of every layer of ``model`` (containers with their paths, indented), its output
    shape per sample and its parameter count, with the total. The model must be built, or
    ``input_shape`` (per sample) given to build it."""
    if not model.built:
        if input_shape is None:
            raise ValueError("summary needs a built model, or input_shape= (per sample)")
        model.build(tuple(input_shape))
    params = model.parameters()
    dtype = params[0].data.dtype if params else np.float32
    x = _array.move(np.zeros((1,) + tuple(model.input_shape), dtype=dtype), model.device)
    rows = []
    _trace(model, x, 0, rows)
    lines = [f"{'layer':<40}{'output shape':>20}{'parameters':>14}"]
    for depth, name, shape, count in rows:
        label = "  " * depth + name
        lines.append(f"{label:<40}{'' if shape is None else str(shape):>20}"
                     f"{'' if count is None else f'{count:,}':>14}")
    lines.append(f"total parameters: {sum(p.size for p in params):,}")
    return "\n".join(lines)

"""Models beyond a straight stack: containers that are layers themselves.

- ``Residual(*layers, shortcut=None)``: ``y = f(x) + x`` (identity shortcut) or
  ``f(x) + shortcut(x)`` (a projection, e.g. ``Conv2D(c, 1)`` or ``Dense(n)``), ``f`` the layers
  in order.
- ``Branches(*branches, merge="add" | "concat")``: one input through several paths (each a layer
  or a list of layers), their outputs added or concatenated along axis 1 (features/channels).
- ``Columns(groups, *branches, merge="concat")``: several inputs given as column blocks of one 2-D
  ``x`` (what scikit-learn's ``ColumnTransformer`` produces): branch i reads the columns
  ``groups[i] = (start, stop)``; e.g. numeric columns through a ``Dense``, categorical codes
  through an ``Embedding``.

Containers nest, and go wherever a layer goes (inside a ``Sequential``, as a model of their own):
every parameter still lives in the enclosing model's one flat buffer (``parameters()`` walks the
children in order), shapes are inferred when the model builds, an error names the node and the
fix, and ``summary(model)`` (``nn/summary.py``) lists every layer with its output shape and
parameter count, each container's paths indented.

One layer object may appear only once in a model: weight sharing (``Branches(d, d)``) is refused
when the model builds, with a ValueError naming both places (``check_distinct_layers``). A
description that ``fastnn.load`` rebuilds may nest containers (Sequential included) at most
``MAX_NESTING`` deep.
"""
import numpy as np

from .._kernels._validate import is_int
from . import _array
from .base import Layer, _expected, _shape_matches
from .sequential import (Sequential, backprop_layers, check_distinct_layers, check_nesting,
                         run_layers)

__all__ = ["Residual", "Branches", "Columns"]

MERGES = ("add", "concat")


def _chain(branch, where):
    """A branch as a list of layers (a layer, a list/tuple of layers, or a Sequential's)."""
    if isinstance(branch, Sequential):
        return list(branch.layers)
    layers = list(branch) if isinstance(branch, (list, tuple)) else [branch]
    for layer in layers:
        if not isinstance(layer, Layer):
            raise TypeError(f"{where} takes fastnn.nn layers, got {type(layer).__name__}")
    return layers


def _run_chain(layers, x, training, where):
    """``run_layers``, with build errors naming the layer inside the container."""
    if all(layer.built for layer in layers):
        return run_layers(layers, x, training)
    for i, layer in enumerate(layers):
        shape = tuple(x.shape[1:])
        try:
            x = layer.forward(x, training)
        except (ValueError, TypeError) as err:
            if type(err) not in (ValueError, TypeError):
                raise
            raise type(err)(f"{where}, layer {i} ({type(layer).__name__}) given per-sample "
                            f"shape {shape}: {err}") from err
    return x


def _merge(outputs, merge, names):
    """The outputs added, or concatenated along axis 1; mismatched shapes name the fix."""
    shapes = [tuple(y.shape[1:]) for y in outputs]
    if merge == "add":
        if len(set(shapes)) > 1:
            raise ValueError(f"cannot add outputs of per-sample shapes {dict(zip(names, shapes))}: "
                             "make them equal (a projection such as Dense(n) or Conv2D(c, 1) on "
                             "a path), or merge='concat'")
        out = _array.copy(outputs[0])
        for y in outputs[1:]:
            _array.accumulate(out, y)
        return out
    if len({s[1:] for s in shapes}) > 1 or any(len(s) == 0 for s in shapes):
        raise ValueError(f"cannot concatenate outputs of per-sample shapes "
                         f"{dict(zip(names, shapes))} along axis 1: every other axis must agree")
    width = sum(s[0] for s in shapes)
    out = _array.empty_like(outputs[0], (outputs[0].shape[0], width) + shapes[0][1:])
    offset = 0
    for y in outputs:
        _array.put_channels(out, y, offset)
        offset += y.shape[1]
    return out


def _split_grad(dy, merge, widths):
    """The gradient of each merged output: ``dy`` itself for each (copies for all but the last:
    a layer's backward may work in place) with 'add', its channels with 'concat'."""
    if merge == "add":
        return [_array.copy(dy) for _ in widths[:-1]] + [dy]
    grads, offset = [], 0
    for w in widths:
        grads.append(_array.take_channels(dy, offset, w))
        offset += w
    return grads


def _add_grads(grads):
    grads = [g for g in grads if g is not None]
    if not grads:
        return None
    total = grads[0]
    for g in grads[1:]:
        _array.accumulate(total, g)
    return total


class _Container(Layer):
    """A layer made of child layers: built on its first forward pass (each child from what it
    receives), its parameters and buffers those of its children, moved with them."""

    # the constructor's variable-length argument, as ``get_config`` returns it
    _positional_config = None

    def children(self):
        raise NotImplementedError

    def parameters(self):
        return [p for child in self.children() for p in child.parameters()]

    @property
    def supports_cuda(self):
        return all(child.supports_cuda for child in self.children())

    def _move_buffers(self, device):
        for child in self.children():
            child._move_buffers(device)
            child.device = device

    def build(self, input_shape, rng=None, dtype=np.float32):
        """Build every child for per-sample ``input_shape`` (a pass over an empty batch)."""
        if rng is not None:
            self._rng = rng
        if not self.built:
            self.forward(np.zeros((0,) + tuple(input_shape), dtype=dtype), False)
        if self.device != "cpu":
            self.to(self.device)
        return self

    def forward(self, x, training=False):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if self.built:
            if not _shape_matches(self.input_shape, tuple(x.shape[1:])):
                raise ValueError(f"{type(self).__name__} was built for input of shape "
                                 f"{_expected(self.input_shape)}, got {tuple(x.shape)}")
            return self._run(x, training)
        check_distinct_layers(self)  # one layer object twice: refused, naming both places
        rng = self._init_rng()
        for child in self.children():
            child._rng = rng
        y = self._run(x, training)
        self.input_shape, self.output_shape = tuple(x.shape[1:]), tuple(y.shape[1:])
        self.built = True
        return y

    def backward(self, dy, input_grad=True):
        return self._backprop(dy, input_grad)

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        """The container ``get_config`` describes (``fastnn.load``, ``clone``)."""
        config = dict(config)
        items = config.pop(cls._positional_config, [])
        if not isinstance(items, list):
            raise TypeError(f"{cls._positional_config} must be a list")
        if cls is Columns:
            groups = config.pop("groups", [])
            if not isinstance(groups, list):
                raise TypeError("groups must be a list of [start, stop] pairs")
            model = cls(groups, *items, **config)
        else:
            model = cls(*items, **config)
        return check_nesting(model)

    def clone(self):
        return self.from_config(self.get_config())

    def __repr__(self):
        config = self.get_config()
        inner = ",\n".join("  " + repr(v).replace("\n", "\n  ")
                           for v in config.pop(self._positional_config))
        rest = "".join(f",\n  {k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}(\n{inner}{rest}\n)"


class Residual(_Container):
    """``y = f(x) + x`` (``shortcut=None``), or ``f(x) + shortcut(x)`` with a projection layer,
    ``f`` being ``layers`` in order. The two must give the same shape: when they do not (more
    channels, a stride), the error says which projection to add."""

    _positional_config = "layers"

    def __init__(self, *layers, shortcut=None):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Residual needs at least one layer")
        self.layers = _chain(list(layers), "Residual")
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise TypeError(f"shortcut must be a fastnn.nn layer or None, got "
                            f"{type(shortcut).__name__}")
        self.shortcut = shortcut

    def children(self):
        return self.layers + ([self.shortcut] if self.shortcut is not None else [])

    def named_children(self):
        named = [(f"layer {i} ({type(layer).__name__})", layer)
                 for i, layer in enumerate(self.layers)]
        if self.shortcut is not None:
            named.append((f"shortcut ({type(self.shortcut).__name__})", self.shortcut))
        return named

    def get_config(self):
        return {"layers": [layer.clone() for layer in self.layers],
                "shortcut": None if self.shortcut is None else self.shortcut.clone()}

    def _run(self, x, training):
        y = _run_chain(self.layers, x, training, "Residual")
        s = x if self.shortcut is None else _run_chain([self.shortcut], x, training,
                                                       "Residual shortcut")
        if tuple(y.shape) != tuple(s.shape):
            fix = ("a projection shortcut, e.g. shortcut=Conv2D(c, 1, stride=s) or Dense(n)"
                   if self.shortcut is None else "a shortcut that gives the layers' shape")
            raise ValueError(f"Residual: its layers give per-sample shape {tuple(y.shape[1:])} "
                             f"but the shortcut {tuple(s.shape[1:])}; use {fix}")
        # a new array: the last layer may keep its output for its backward (Tanh, ReLU), and
        # the caller holds x
        out = _array.copy(y)
        _array.accumulate(out, s)
        return out

    def summary_paths(self, x):
        paths = [("layers", self.layers, x)]
        return paths + ([("shortcut", [self.shortcut], x)] if self.shortcut is not None else [])

    def _backprop(self, dy, input_grad):
        to_layers = _array.copy(dy)
        dx = backprop_layers(self.layers, to_layers, input_grad)
        if self.shortcut is None:
            return _add_grads([dx, dy]) if input_grad else None
        return _add_grads([dx, self.shortcut.backward(dy, input_grad=input_grad)])


class Branches(_Container):
    """One input through every branch (a layer or a list of layers), the outputs merged:
    ``merge="add"`` (equal shapes) or ``"concat"`` along axis 1 (features or channels)."""

    _positional_config = "branches"

    def __init__(self, *branches, merge="concat"):
        super().__init__()
        if len(branches) < 2:
            raise ValueError("Branches needs at least two branches")
        self._set_branches(branches, merge)

    def _set_branches(self, branches, merge):
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, got {merge!r}")
        name = type(self).__name__
        self.branches = [_chain(b, f"{name} (branch {i})") for i, b in enumerate(branches)]
        self.merge = merge

    def children(self):
        return [layer for branch in self.branches for layer in branch]

    def named_children(self):
        return [(f"{self._branch_label(b)}, layer {j} ({type(layer).__name__})", layer)
                for b, branch in enumerate(self.branches) for j, layer in enumerate(branch)]

    def _branch_label(self, b):
        return f"branch {b}"

    def get_config(self):
        return {"branches": [[layer.clone() for layer in b] for b in self.branches],
                "merge": self.merge}

    def _run(self, x, training):
        outs = [_run_chain(b, x, training, f"Branches, branch {i}")
                for i, b in enumerate(self.branches)]
        self._widths = [y.shape[1] if y.ndim > 1 else 0 for y in outs]
        return _merge(outs, self.merge, [f"branch {i}" for i in range(len(outs))])

    def summary_paths(self, x):
        return [(f"branch {i}", b, x) for i, b in enumerate(self.branches)]

    def _backprop(self, dy, input_grad):
        grads = _split_grad(dy, self.merge, self._widths)
        return _add_grads([backprop_layers(b, g, input_grad)
                           for b, g in zip(self.branches, grads)])


def _column_groups(groups):
    out = []
    for given in groups:
        g = given
        if isinstance(g, slice) and g.step in (None, 1) and None not in (g.start, g.stop):
            g = (g.start, g.stop)
        if not isinstance(g, (tuple, list)):
            raise ValueError(f"a column group is a (start, stop) pair or slice(start, stop), "
                             f"got {given!r}")
        g = tuple(g)
        if len(g) != 2 or not all(map(is_int, g)) or not 0 <= g[0] < g[1]:
            raise ValueError(f"a column group is a (start, stop) pair with 0 <= start < stop, "
                             f"got {g!r}")
        out.append((int(g[0]), int(g[1])))
    spans = sorted(out)
    for a, b in zip(spans, spans[1:]):
        if b[0] < a[1]:
            raise ValueError(f"column groups {a} and {b} overlap")
    return out


class Columns(Branches):
    """Several inputs as column blocks of one 2-D ``x``: branch i reads columns
    ``groups[i] = (start, stop)`` (or ``slice(start, stop)``), the outputs merged as in
    ``Branches`` (default: concatenated). Columns in no group are not read."""

    def __init__(self, groups, *branches, merge="concat"):
        _Container.__init__(self)
        self.groups = _column_groups(groups)
        if len(branches) != len(self.groups) or not branches:
            raise ValueError(f"Columns takes one branch per column group: {len(self.groups)} "
                             f"groups, {len(branches)} branches")
        self._set_branches(branches, merge)

    def get_config(self):
        return {**super().get_config(), "groups": [list(g) for g in self.groups]}

    def _branch_label(self, b):
        start, stop = self.groups[b]
        return f"branch {b} (columns {start}:{stop})"

    def _run(self, x, training):
        if x.ndim != 2:
            raise ValueError(f"Columns reads column blocks of a 2-D x (N, features), got shape "
                             f"{tuple(x.shape)}")
        last = max(stop for _, stop in self.groups)
        if x.shape[1] < last:
            raise ValueError(f"Columns reads columns up to {last}, but x has {x.shape[1]}")
        outs = [_run_chain(b, _array.take_channels(x, start, stop - start), training,
                           f"Columns, branch {i} (columns {start}:{stop})")
                for i, (b, (start, stop)) in enumerate(zip(self.branches, self.groups))]
        self._widths = [y.shape[1] if y.ndim > 1 else 0 for y in outs]
        self._n_features = x.shape[1]
        return _merge(outs, self.merge, [f"columns {a}:{b}" for a, b in self.groups])

    def summary_paths(self, x):
        return [(f"columns {a}:{b}", branch, _array.take_channels(x, a, b - a))
                for branch, (a, b) in zip(self.branches, self.groups)]

    def _backprop(self, dy, input_grad):
        grads = _split_grad(dy, self.merge, self._widths)
        dxs = [backprop_layers(b, g, input_grad) for b, g in zip(self.branches, grads)]
        if not input_grad:
            return None
        dx = _array.zeros_like(_array.empty_like(dy, (dy.shape[0], self._n_features)))
        for (start, _), g in zip(self.groups, dxs):
            _array.put_channels(dx, g, start)
        return dx

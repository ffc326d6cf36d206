"""``Sequential``: layers applied in order, their parameters in one flat buffer."""
import math

import numpy as np

from .._kernels._dispatch import is_cuda_array, resolve_device
from .base import FlatBuffer, Layer, _check_same_device, _check_supports, _expected, _shape_matches
from .training import fit, predict


class Sequential(Layer):
    """Layers applied in order. Parameters of all layers share one flat buffer (``self.flat``).

    ``seed`` makes weight initialisation reproducible (the same seed gives identical weights).
    """


    def __init__(self, *layers, seed=None):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential takes fastnn.nn layers, got {type(layer).__name__}")
        self.layers = list(layers)
        self.seed = seed
        self.flat = None

    def get_config(self):
        return {"layers": [layer.clone() for layer in self.layers], "seed": self.seed}

    def clone(self):
        return Sequential(*[layer.clone() for layer in self.layers], seed=self.seed)

    @classmethod
    def from_config(cls, config):
        """The model ``get_config`` describes (``fastnn.load``)."""
        config = dict(config)
        layers = config.pop("layers", [])
        if not isinstance(layers, list):
            raise TypeError("layers must be a list")
        return check_nesting(cls(*layers, **config))

    def __repr__(self):
        inner = ",\n".join("  " + repr(layer) for layer in self.layers)
        return f"Sequential(\n{inner}\n)"

    def children(self):
        return list(self.layers)

    def named_children(self):
        """``[(label, layer)]``: where each layer sits, for error messages."""
        return [(f"layer {i} ({type(layer).__name__})", layer)
                for i, layer in enumerate(self.layers)]

    def summary(self, input_shape=None):
        """Every layer with its output shape and parameter count (``fastnn.nn.summary``)."""
        from .summary import summary
        return summary(self, input_shape)

    def summary_paths(self, x):
        return [(None, self.layers, x)]

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def build(self, input_shape, rng=None, dtype=np.float32):
        """Build every layer for per-sample ``input_shape`` (a forward pass on an empty batch on
        the host), then move to the model's device."""
        if rng is not None:
            self._rng = rng
        if not self.built:  # an empty batch: every layer builds, no activation is allocated
            codes = "f" not in self._input_kinds  # an Embedding first: int64 codes
            x0 = np.zeros((0,) + tuple(input_shape), dtype=np.int64 if codes else dtype)
            self._build_forward(x0, False, dtype if codes else None)
        if self.device != "cpu":
            self.to(self.device)
        return self

    def to(self, device):
        """Move every layer's parameters (one flat buffer) and state arrays to ``device``."""
        device = resolve_device(device)
        for layer in self.layers:
            _check_supports(layer, device)
        if self.built:
            if self.flat is not None:
                self.flat.to(device)
            for layer in self.layers:
                layer._move_buffers(device)
                layer.device = device
        self.device = device  # an unbuilt model moves when it builds
        return self

    def _check_input(self, x):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if self.built:
            if not _shape_matches(self.input_shape, tuple(x.shape[1:])):
                raise ValueError(f"Sequential was built for input of shape "
                                 f"{_expected(self.input_shape)}, got {tuple(x.shape)}")
            if self.flat is not None:
                _check_same_device("the model's parameters are", self.device, x)
        return x

    def forward(self, x, training=False):
        x = self._check_input(x)
        if not self.built:
            if self.device == "cpu" and not is_cuda_array(x):
                return self._build_forward(x, training)
            self.to("cuda")  # builds on the host, then moves (the input stays where it is)
            self.build(tuple(x.shape[1:]), dtype=np.dtype(x.dtype))
            self._check_input(x)
        return run_layers(self.layers, x, training)

    @property
    def _input_kinds(self):
        """What the first layer takes (floats; integer codes for an Embedding)."""
        return self.layers[0]._input_kinds if self.layers else "f"

    def _build_forward(self, x, training, dtype=None):
        """The first forward pass on the host: every layer builds from what it receives.

        ``dtype``: the float dtype of a first layer that takes integer codes (their dtype says
        nothing about the parameters'); it builds before the pass."""
        check_distinct_layers(self)
        input_shape = tuple(x.shape[1:])
        rng = self._rng if self._rng is not None else np.random.default_rng(self.seed)
        for layer in self.layers:
            layer._rng = rng
        if dtype is not None and self.layers and not self.layers[0].built:
            self.layers[0].build(input_shape, rng, dtype)
        shapes = []
        for i, layer in enumerate(self.layers):
            shapes.append(tuple(x.shape[1:]))
            try:
                x = layer.forward(x, training)
            except (ValueError, TypeError) as err:
                if type(err) not in (ValueError, TypeError):
                    raise
                raise type(err)(_layer_error(i, layer, shapes[-1], err)) from err
        self.layer_input_shapes = shapes  # per-sample input shape of every layer
        self.output_shape = tuple(x.shape[1:])
        self.input_shape = input_shape
        self.built = True
        self.pack()
        return x

    def pack(self):
        """Move every parameter into one flat buffer (values and gradients)."""
        params = self.parameters()
        self.flat = FlatBuffer.of(params) if params else None
        return self.flat

    def backward(self, dy, input_grad=True):
        """Backpropagate through every layer. With ``input_grad=False`` (training: nobody needs
        the gradient of the input) the layers before the first one with parameters are skipped
        and that layer computes no dx; None is returned."""
        return backprop_layers(self.layers, dy, input_grad)

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def zero_grad(self):
        if self.flat is not None:
            self.flat.zero_grad()
        else:
            for p in self.parameters():
                p.grad[...] = 0

    def predict(self, x, batch_size=None):
        """Forward pass in inference mode, in batches (``None``: sized to bound memory, see
        ``fastnn.nn.predict``); returns a NumPy array of the outputs.

        A model on the GPU takes NumPy or CUDA input: the input moves to the device once and the
        outputs come back once.
        """
        return predict(self, x, batch_size=batch_size)

    def fit(self, x, y, **kwargs):
        """Train this model; see ``fastnn.nn.fit`` for the arguments. Returns the history."""
        return fit(self, x, y, **kwargs)

    @property
    def dtype(self):
        params = self.parameters()
        return np.dtype(params[0].data.dtype) if params else None


# The deepest nesting of containers (Sequential, Residual, Branches, Columns) a description may
# give (``from_config``: ``fastnn.load``, ``clone``): real models nest a few levels; a crafted
# file must not recurse without bound.
MAX_NESTING = 32


def _nesting(layer):
    """How many containers deep ``layer`` goes (0 for a layer without children)."""
    depth = getattr(layer, "_nesting_depth", None)
    if depth is None:
        children = layer.children()
        depth = 1 + max(map(_nesting, children), default=0) if children else 0
    return depth


def check_nesting(model):
    """``model`` (just rebuilt from a description, its children first: each level adds one to
    theirs), or a ValueError when containers nest more than ``MAX_NESTING`` deep."""
    model._nesting_depth = _nesting(model)
    if model._nesting_depth > MAX_NESTING:
        raise ValueError(f"containers (Sequential, Residual, Branches, Columns) are nested more "
                         f"than {MAX_NESTING} deep; flatten the model (a Sequential of blocks)")
    return model


def named_children_of(layer):
    """``[(label, child)]`` of any layer: a container's own labels, else its children numbered."""
    named = getattr(layer, "named_children", None)
    if callable(named):
        return named()
    return [(f"part {i} ({type(child).__name__})", child)
            for i, child in enumerate(layer.children())]


def check_distinct_layers(model):
    """Refuse a layer object that appears twice in ``model`` (``Sequential(d, d)``,
    ``Branches(d, [Tanh(), d])``): sharing weights that way is not supported. Each parameter has
    one slot in the model's flat buffer and each layer keeps one forward pass for its backward,
    so a layer used twice would be packed twice and its gradients would be wrong. Called when a
    model builds; the error names both places and the fix."""
    seen = {id(model): "the model itself"}

    def walk(layer, path):
        for label, child in named_children_of(layer):
            where = f"{path} > {label}" if path else label
            if id(child) in seen:
                name = type(child).__name__
                raise ValueError(
                    f"{type(model).__name__}: {where} is the same {name} object as "
                    f"{seen[id(child)]}. One layer object used twice in a model (weight "
                    f"sharing) is not supported: its parameters would take two slots in the "
                    f"model's flat buffer and its backward would see only its last forward "
                    f"pass, so the gradients would be wrong. Use two separate layers, e.g. "
                    f"{name}(...) written twice, or layer.clone() for an unbuilt copy")
            seen[id(child)] = where
            walk(child, where)

    walk(model, "")


def run_layers(layers, x, training):
    """``x`` through ``layers`` in order; a conv/dense followed by a ReLU runs as one kernel
    (bias and ReLU fused; the ReLU layer keeps the output for its backward)."""
    last = len(layers) - 1
    i = 0
    while i <= last:
        layer = layers[i]
        if layer._fuses_relu and i < last and layers[i + 1]._takes_fused_relu:
            y = layer._forward(layer._check_input(x), training, relu=True)
            x = layers[i + 1]._take_fused(y)
            i += 2
        else:
            x = layer.forward(x, training)
            i += 1
    return x


def backprop_layers(layers, dy, input_grad):
    """Backpropagate ``dy`` through ``layers`` (last first). With ``input_grad=False`` (nobody
    needs the gradient of the input) the layers before the first one with parameters are
    skipped and that layer computes no dx; None is returned."""
    first = 0
    if not input_grad:
        first = next((i for i, layer in enumerate(layers) if layer.parameters()), None)
        if first is None:
            return None
    for i in range(len(layers) - 1, first - 1, -1):
        dy = layers[i].backward(dy, input_grad=input_grad or i > first)
    return dy


def _layer_error(index, layer, shape, err):
    """The message of a layer that failed to build: which layer, on what, and the fix."""
    name = type(layer).__name__
    text = f"layer {index} ({name}) of the Sequential, given per-sample shape {shape}: {err}"
    nd = getattr(layer, "_nd", None)
    if nd is None or not hasattr(layer, "_k"):   # the hints below are for conv and pooling
        return text
    if len(shape) == 1 and index > 0:
        return text + f". Put a Reshape to {'(C, H, W)' if nd == 2 else '(C, L)'} before it."
    if len(shape) == 1 and nd == 2:
        side = math.isqrt(shape[0])
        if side * side == shape[0]:
            return (text + f". Images given as flat rows? Reshape x to (N, 1, {side}, {side}) "
                    f"(NeuralNet estimators: input_shape=(1, {side}, {side})).")
        return text + ". Reshape x to (N, C, H, W) (NeuralNet estimators: input_shape=(C, H, W))."
    if len(shape) == 1 and nd == 1:
        return (text + f". Reshape x to (N, 1, {shape[0]}) (NeuralNet estimators: "
                f"input_shape=(1, {shape[0]})).")
    spatial = shape[1:]
    padding = layer._padding  # ints; a convolution's padding mode ("same", ...) is a str
    if len(spatial) == nd and type(padding) is tuple and any(
            size + 2 * p < k for size, k, p in zip(spatial, layer._k, padding)):
        return (text + f". The layers before it leave a {'x'.join(map(str, spatial))} map, "
                "smaller than the window: pool or stride less, pad, or remove a pooling layer.")
    return text

"""Convolutions (public wrappers): validate, normalise, compute the output shape, allocate it
through the backend and compose the backend's four operations (``conv_forward``,
``conv_data_grad``, ``conv_weight_grad``, ``bias_grad``) into each public op: written once for
the CPU and the GPU.

Semantics are those of ``torch.nn.functional.conv2d``, ``conv1d`` and ``conv_transpose2d`` and of
their autograd. 1-D convolutions run the 2-D kernels on a height-1 view.
"""

from ._dispatch import backend
from ._validate import conv_output_size, conv_padding, fused_relu, int_tuple, is_int


def _groups(groups):
    if not is_int(groups):
        raise TypeError(f"groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups!r}")
    return int(groups)


def _geometry(n, stride, padding, dilation, groups):
    return (int_tuple(stride, "stride", n, 1), int_tuple(padding, "padding", n, 0),
            int_tuple(dilation, "dilation", n, 1), _groups(groups))


def _conv_geometry(w_shape, stride, padding, dilation, groups):
    """(stride, (padding before, after), dilation, groups) of a forward convolution with
    weights of shape ``w_shape``; ``padding`` may be a mode (``_validate.conv_padding``)."""
    n = len(w_shape) - 2
    stride = int_tuple(stride, "stride", n, 1)
    dilation = int_tuple(dilation, "dilation", n, 1)
    pads = conv_padding(padding, tuple(w_shape[2:]), stride, dilation)
    return stride, pads, dilation, _groups(groups)


def _check_channels(c_in, w_shape, groups, transposed):
    """Channel counts of x and w against groups; returns C_out."""
    if c_in < 1:
        raise ValueError(f"x must have at least one input channel (axis 1), got {c_in}")
    if c_in % groups:
        raise ValueError(f"groups={groups} must divide the {c_in} input channels of x")
    if transposed:
        if w_shape[0] != c_in:
            raise ValueError(
                f"w must have shape (C_in={c_in}, C_out/groups, ...) for x with {c_in} channels, "
                f"got w.shape[0]={w_shape[0]}")
        return w_shape[1] * groups
    if w_shape[0] % groups:
        raise ValueError(f"groups={groups} must divide the {w_shape[0]} output channels "
                         f"(w.shape[0]) of w")
    if w_shape[1] != c_in // groups:
        raise ValueError(
            f"w.shape[1] must be C_in/groups = {c_in}/{groups} = {c_in // groups}, "
            f"got w of shape {tuple(w_shape)}")
    return w_shape[0]


def _check_bias(b, c_out):
    if b is not None and tuple(b.shape) != (c_out,):
        raise ValueError(f"b must have shape ({c_out},) (one per output channel), "
                         f"got {tuple(b.shape)}")


def _check_dy(dy, shape):
    if tuple(dy.shape) != tuple(shape):
        raise ValueError(f"dy must have the forward output's shape {tuple(shape)}, "
                         f"got {tuple(dy.shape)}")


def _conv_out_shape(x_shape, w_shape, stride, pads, dilation, groups):
    """Output shape for ``pads`` = (padding before, padding after) per spatial axis."""
    c_out = _check_channels(x_shape[1], w_shape, groups, transposed=False)
    before, after = pads
    spatial = tuple(conv_output_size(x_shape[2 + a], w_shape[2 + a], stride[a], before[a],
                                     dilation[a], name="input", padding_after=after[a])
                    for a in range(len(stride)))
    return (x_shape[0], c_out) + spatial


def _transposed_out_shape(x_shape, w_shape, stride, padding, output_padding, dilation, groups):
    c_out = _check_channels(x_shape[1], w_shape, groups, transposed=True)
    spatial = []
    for a in range(len(stride)):
        if output_padding[a] >= stride[a] and output_padding[a] >= dilation[a]:
            raise ValueError(
                f"output_padding must be smaller than stride or dilation, got output_padding="
                f"{output_padding}, stride={stride}, dilation={dilation}")
        size = ((x_shape[2 + a] - 1) * stride[a] - 2 * padding[a]
                + dilation[a] * (w_shape[2 + a] - 1) + output_padding[a] + 1)
        if size < 1:
            raise ValueError(
                f"padding={padding} is too large: the output of conv_transpose would have size "
                f"{size} along spatial axis {a}")
        spatial.append(size)
    return (x_shape[0], c_out) + tuple(spatial)


def _arrays(be, x, w, b=None, dy=None, nd=2):
    layout = "(N, C, H, W)" if nd == 2 else "(N, C, L)"
    x = be.float_array(x, "x", ndim=nd + 2, layout=layout)
    w_layout = "(C_out, C_in/groups, kh, kw)" if nd == 2 else "(C_out, C_in/groups, k)"
    w = be.float_array(w, "w", ndim=nd + 2, dtype=x.dtype, layout=w_layout)
    if b is not None:
        b = be.float_array(b, "b", ndim=1, dtype=x.dtype)
    if dy is not None:
        dy = be.float_array(dy, "dy", ndim=nd + 2, dtype=x.dtype, layout=layout)
    return x, w, b, dy


def _as_2d(a):
    """(N, C, L) -> (N, C, 1, L) view (works for NumPy and CUDA device arrays)."""
    return a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])


def _as_2d_shape(shape):
    return (shape[0], shape[1], 1, shape[2])


def _as_1d(a):
    return a.reshape(a.shape[0], a.shape[1], a.shape[3])


def _conv2d(be, x, w, b, out_shape, stride, padding, dilation, groups, relu):
    impl = be.impl("conv")
    return impl.conv_forward(x, w, b, impl.empty(out_shape, x.dtype), stride, padding, dilation,
                             groups, relu)


def _conv2d_backward(be, dy, x, w, stride, padding, dilation, groups, input_grad):
    impl = be.impl("conv")
    dx = None
    if input_grad:  # False: dx is not needed (the first layer of a network); returned as None
        dx = impl.conv_data_grad(dy, w, None, impl.empty(x.shape, x.dtype), stride, padding,
                                 dilation, groups)
    dw = impl.conv_weight_grad(dy, x, w.shape, stride, padding, dilation, groups)
    return dx, dw, impl.bias_grad(dy)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, activation=None):
    """2-D convolution as ``torch.nn.functional.conv2d``.

    x (N, C_in, H, W), w (C_out, C_in/groups, kh, kw), b (C_out,) or None. Returns
    y (N, C_out, Ho, Wo) with Ho = (H + 2*padding - dilation*(kh-1) - 1) // stride + 1.
    ``padding``: an int, a pair, ``"valid"`` or ``"same"`` (PyTorch's: stride 1, any extra zero
    after). ``activation="relu"`` returns ``relu(conv2d(...))``, applied while each block of y
    is in cache (``relu_backward`` takes that output in place of the pre-activation).
    """
    relu = fused_relu(activation)
    be = backend(x, w, b)
    x, w, b, _ = _arrays(be, x, w, b)
    stride, pads, dilation, groups = _conv_geometry(w.shape, stride, padding, dilation, groups)
    out = _conv_out_shape(x.shape, w.shape, stride, pads, dilation, groups)
    _check_bias(b, out[1])
    # the kernels pad pads[0] before; the output's size decides how far they read after
    return _conv2d(be, x, w, b, out, stride, pads[0], dilation, groups, relu)


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, input_grad=True):
    """Gradients of ``conv2d`` with respect to x, w and b: returns ``(dx, dw, db)``.

    dy is the gradient of the output (N, C_out, Ho, Wo); db is dy summed over N, Ho and Wo.
    ``input_grad=False`` skips dx (returned as None), for a layer whose input needs no gradient.
    """
    be = backend(dy, x, w)
    x, w, _, dy = _arrays(be, x, w, dy=dy)
    stride, pads, dilation, groups = _conv_geometry(w.shape, stride, padding, dilation, groups)
    _check_dy(dy, _conv_out_shape(x.shape, w.shape, stride, pads, dilation, groups))
    return _conv2d_backward(be, dy, x, w, stride, pads[0], dilation, groups, bool(input_grad))


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, activation=None):
    """1-D convolution as ``torch.nn.functional.conv1d``.

    x (N, C_in, L), w (C_out, C_in/groups, k), b (C_out,) or None. Returns y (N, C_out, Lo),
    Lo = (L + 2*padding - dilation*(k-1) - 1) // stride + 1. ``padding``: an int, ``"valid"``,
    ``"same"`` (PyTorch's: stride 1, Lo = L) or ``"causal"`` (Keras': ``dilation*(k-1)`` zeros
    before the input only, Lo = (L-1) // stride + 1, output t sees inputs up to t*stride).
    ``activation="relu"``: fused ReLU, as in ``conv2d``.
    """
    relu = fused_relu(activation)
    be = backend(x, w, b)
    x, w, b, _ = _arrays(be, x, w, b, nd=1)
    stride, pads, dilation, groups = _conv_geometry(w.shape, stride, padding, dilation, groups)
    out = _conv_out_shape(x.shape, w.shape, stride, pads, dilation, groups)
    _check_bias(b, out[1])
    y = _conv2d(be, _as_2d(x), _as_2d(w), b, _as_2d_shape(out), (1,) + stride, (0,) + pads[0],
                (1,) + dilation, groups, relu)
    return _as_1d(y)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1, groups=1, input_grad=True):
    """Gradients of ``conv1d``: returns ``(dx, dw, db)``; db is dy summed over N and L
    (``input_grad=False``: dx is None)."""
    be = backend(dy, x, w)
    x, w, _, dy = _arrays(be, x, w, dy=dy, nd=1)
    stride, pads, dilation, groups = _conv_geometry(w.shape, stride, padding, dilation, groups)
    _check_dy(dy, _conv_out_shape(x.shape, w.shape, stride, pads, dilation, groups))
    dx, dw, db = _conv2d_backward(be, _as_2d(dy), _as_2d(x), _as_2d(w), (1,) + stride,
                                  (0,) + pads[0], (1,) + dilation, groups, bool(input_grad))
    return None if dx is None else _as_1d(dx), _as_1d(dw), db


def conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """2-D transposed convolution as ``torch.nn.functional.conv_transpose2d``.

    x (N, C_in, H, W), w (C_in, C_out/groups, kh, kw), b (C_out,) or None. Returns
    y (N, C_out, Ho, Wo) with Ho = (H-1)*stride - 2*padding + dilation*(kh-1) + output_padding + 1;
    output_padding must be smaller than stride or dilation.
    """
    be = backend(x, w, b)
    x, w, b, _ = _arrays(be, x, w, b)
    stride, padding, dilation, groups = _geometry(2, stride, padding, dilation, groups)
    output_padding = int_tuple(output_padding, "output_padding", 2, 0)
    out = _transposed_out_shape(x.shape, w.shape, stride, padding, output_padding, dilation, groups)
    _check_bias(b, out[1])
    # the transposed convolution is conv2d's input gradient
    return be.impl("conv").conv_data_grad(x, w, b, be.impl("conv").empty(out, x.dtype), stride,
                                          padding, dilation, groups)


def conv_transpose2d_backward(dy, x, w, stride=1, padding=0, output_padding=0, groups=1,
                              dilation=1):
    """Gradients of ``conv_transpose2d``: returns ``(dx, dw, db)``; db is dy summed over N, Ho
    and Wo."""
    be = backend(dy, x, w)
    x, w, _, dy = _arrays(be, x, w, dy=dy)
    stride, padding, dilation, groups = _geometry(2, stride, padding, dilation, groups)
    output_padding = int_tuple(output_padding, "output_padding", 2, 0)
    _check_dy(dy, _transposed_out_shape(x.shape, w.shape, stride, padding, output_padding,
                                        dilation, groups))
    impl = be.impl("conv")
    dx = impl.conv_forward(dy, w, None, impl.empty(x.shape, x.dtype), stride, padding, dilation,
                           groups)
    dw = impl.conv_weight_grad(x, dy, w.shape, stride, padding, dilation, groups)
    return dx, dw, impl.bias_grad(dy)

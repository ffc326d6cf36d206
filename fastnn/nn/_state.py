"""A model as a JSON-serialisable description and its arrays, and back (``fastnn.io`` files).

Layer classes are looked up by name in an allow-list: the public layers of ``fastnn.nn`` and the
classes given to ``register_layer``; a layer's configuration holds JSON numbers, strings, lists,
tuples, dicts, nested layers and ``fastnn.nn.init`` initialisers by name. Rebuilding runs no code
beyond the constructors of those classes; anything wrong raises ``_Invalid`` (a ValueError).
"""
import importlib
import numbers

import numpy as np

from .. import _archive
from .._archive import _Invalid
from . import init, optimizers
from ._array import to_host
from .base import Layer, model_buffers
from .._kernels._validate import is_int

_LAYER_MODULES = ("fastnn.nn.base", "fastnn.nn.sequential", "fastnn.nn.layers",
                  "fastnn.nn.recurrent", "fastnn.nn.graph")
_EXTRA_LAYERS = {}
_FLOAT_DTYPES = ("float32", "float64")


def class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _layer_registry():
    registry = {}
    for modname in _LAYER_MODULES:
        try:
            module = importlib.import_module(modname)
        except ImportError:
            continue
        for name, obj in vars(module).items():
            if (isinstance(obj, type) and issubclass(obj, Layer) and obj is not Layer
                    and not name.startswith("_") and obj.__module__ == modname):
                registry[name] = obj
    registry.update(_EXTRA_LAYERS)
    return registry


def register_layer(cls, name=None):
    """Allow ``load`` to rebuild layers of ``cls`` (a ``fastnn.nn.Layer`` subclass) by name."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer takes a Layer subclass, got {cls!r}")
    _EXTRA_LAYERS[name or cls.__name__] = cls
    return cls


# --- config values <-> JSON ----------------------------------------------------------------------

def _encode(value, where):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, Layer):
        return {"__layer__": _describe(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, where) for k, v in value.items()}}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).name}
    if callable(value):
        name = getattr(value, "__name__", None)
        if name and getattr(init, name, None) is value:
            return {"__init__": name}
    raise TypeError(f"cannot save {where}={value!r}: configuration values must be JSON numbers, "
                    "strings, lists, tuples, dicts, layers or fastnn.nn.init functions")


def _decode(value, registry):
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, list):
        return [_decode(v, registry) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        (tag, inner), = value.items()
        if tag == "__layer__":
            return _rebuild(inner, registry)
        if tag == "__tuple__" and isinstance(inner, list):
            return tuple(_decode(v, registry) for v in inner)
        if tag == "__dict__" and isinstance(inner, dict):
            return {k: _decode(v, registry) for k, v in inner.items()}
        if tag == "__dtype__" and inner in _FLOAT_DTYPES:
            return np.dtype(inner)
        if tag == "__init__" and isinstance(inner, str):
            fn = getattr(init, inner, None) if inner in getattr(init, "__all__", ()) else None
            if callable(fn):
                return fn
    raise _Invalid(f"unexpected configuration value {value!r}")


def _describe(layer):
    name = type(layer).__name__
    registry = _layer_registry()
    if registry.get(name) is not type(layer):
        raise TypeError(f"cannot save a {class_path(type(layer))}: only fastnn.nn layers (or "
                        "classes registered with fastnn.io.register_layer) can be saved")
    config = layer.get_config()
    return {"class": name,
            "config": {k: _encode(v, f"{name}.{k}") for k, v in config.items()}}


def _rebuild(spec, registry):
    if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
        raise _Invalid("a layer description must be {'class': ..., 'config': {...}}")
    name, config = spec["class"], spec["config"]
    if not isinstance(name, str) or name not in registry:
        raise _Invalid(f"unknown layer class {name!r}; known: {sorted(registry)}")
    if not isinstance(config, dict):
        raise _Invalid(f"the configuration of {name} must be a JSON object")
    kwargs = {k: _decode(v, registry) for k, v in config.items()}
    cls = registry[name]
    try:
        if hasattr(cls, "from_config"):   # Sequential and the containers: layers positional
            return cls.from_config(kwargs)
        return cls(**kwargs)
    except Exception as err:  # a constructor rejecting its arguments: the file is at fault
        raise _Invalid(f"invalid configuration for {name}: {err}") from None


# --- model state ---------------------------------------------------------------------------------

def model_state(model):
    """``(config, arrays)`` of a fastnn.nn model: a JSON-serialisable description and its arrays."""
    if not isinstance(model, Layer):
        raise TypeError(f"expected a fastnn.nn model or layer, got {type(model).__name__}")
    config = {"model": _describe(model), "built": None, "params": [], "buffers": []}
    arrays = {}
    if getattr(model, "built", False):
        params = model.parameters()
        dtype = np.dtype(params[0].data.dtype).name if params else None
        if dtype is None:
            dtype = getattr(model, "_built_dtype", None) or "float32"
        config["built"] = {"input_shape": [None if s is None else int(s)
                                           for s in model.input_shape],
                           "dtype": dtype}
        for i, p in enumerate(params):
            arrays[f"param/{i}"] = np.ascontiguousarray(_host(p.data))
            config["params"].append({"name": p.name, "shape": list(p.shape)})
        for path, arr in model_buffers(model).items():
            arrays[f"buffer/{path}"] = np.ascontiguousarray(_host(arr))
            config["buffers"].append({"path": path, "shape": list(np.shape(arr))})
    return config, arrays


def _host(a):
    return to_host(a)


def _int_list(value, what):
    if not isinstance(value, list) or not all(
            v is None or (is_int(v) and v >= 0)
            for v in value):
        raise _Invalid(f"{what} must be a list of non-negative ints")
    return value


def model_from_state(config, arrays):
    """Rebuild, build and fill a model from ``model_state``'s ``(config, arrays)``."""
    try:
        return _model_from_state(config, arrays)
    except _Invalid as err:
        raise ValueError(str(err)) from None


def _model_from_state(config, arrays):
    if not isinstance(config, dict) or "model" not in config:
        raise _Invalid("the model description is missing")
    model = _rebuild(config["model"], _layer_registry())
    built = config.get("built")
    params_meta = config.get("params", [])
    buffers_meta = config.get("buffers", [])
    if not isinstance(params_meta, list) or not isinstance(buffers_meta, list):
        raise _Invalid("params and buffers must be lists")
    expected = {f"param/{i}" for i in range(len(params_meta))}
    expected |= {f"buffer/{b.get('path')}" for b in buffers_meta if isinstance(b, dict)}
    if set(arrays) != expected:
        extra, missing = sorted(set(arrays) - expected), sorted(expected - set(arrays))
        raise _Invalid(f"arrays do not match the description (unexpected {extra}, "
                       f"missing {missing})")
    if built is None:
        if arrays:
            raise _Invalid("an unbuilt model cannot carry arrays")
        return model
    if not isinstance(built, dict) or set(built) != {"input_shape", "dtype"}:
        raise _Invalid("'built' must be {'input_shape': [...], 'dtype': ...}")
    shape = _int_list(built["input_shape"], "input_shape")
    dtype = built["dtype"]
    if dtype not in _FLOAT_DTYPES:
        raise _Invalid(f"dtype must be float32 or float64, got {dtype!r}")
    dtype = np.dtype(dtype)
    try:
        _build_model(model, tuple(shape), dtype)
    except Exception as err:
        raise _Invalid(f"cannot build the model for input shape {tuple(shape)}: {err}") from None
    params = model.parameters()
    if len(params) != len(params_meta):
        raise _Invalid(f"the file holds {len(params_meta)} parameters, the model has "
                       f"{len(params)}")
    for i, p in enumerate(params):
        _copy_into(p.data, arrays[f"param/{i}"], f"parameter {i} ({p.name})")
    buffers = model_buffers(model)
    saved_paths = [b.get("path") for b in buffers_meta]
    if sorted(saved_paths) != sorted(buffers):
        raise _Invalid(f"the file holds buffers {saved_paths}, the model has {sorted(buffers)}")
    for path, arr in buffers.items():
        _copy_into(arr, arrays[f"buffer/{path}"], f"buffer {path}")
    return model


def _build_model(model, input_shape, dtype):
    rng = np.random.default_rng(0)
    if hasattr(model, "layers"):
        if any(s is None for s in input_shape):
            raise ValueError("a Sequential needs a complete input shape")
        model.build(input_shape, rng=rng, dtype=dtype)
    elif not model.built:  # a layer given its input size builds in its constructor
        model.build(input_shape, rng, dtype)
        model.built = True


def _copy_into(dst, src, what):
    if src.dtype.kind != "f":
        raise _Invalid(f"{what} must be a float array, got dtype {src.dtype}")
    if tuple(src.shape) != tuple(dst.shape):
        raise _Invalid(f"{what} has shape {tuple(src.shape)}, the model expects "
                       f"{tuple(dst.shape)}")
    dst[...] = src


# --- optimizer state -----------------------------------------------------------------------------

def _optimizer_state(optimizer):
    state = optimizer.state_dict()
    scalars, arrays = {}, {}
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            arrays[f"optimizer/{k}"] = v
        else:
            scalars[k] = _encode(v, f"optimizer.{k}")
    return scalars, arrays


def _optimizer_from_state(model, scalars, arrays):
    allowed = {c.__name__: c for c in (optimizers.SGD, optimizers.Adam, optimizers.AdamW,
                                       optimizers.RMSprop, optimizers.Adagrad)}
    if not isinstance(scalars, dict) or scalars.get("type") not in allowed:
        raise _Invalid(f"unknown optimizer type {scalars.get('type')!r}")
    cls = allowed[scalars["type"]]
    values = {k: _decode(v, {}) for k, v in scalars.items()}
    kwargs = {k: values[k] for k in cls._hyper if k in values}
    state = dict(values)
    state.update({k.split("/", 1)[1]: v for k, v in arrays.items()})
    try:
        return cls(model, **kwargs).load_state_dict(state)
    except (TypeError, ValueError) as err:
        raise _Invalid(f"invalid optimizer state: {err}") from None


# --- files ---------------------------------------------------------------------------------------


def save_model(model, path, optimizer=None):
    """Write ``model`` (and the state of ``optimizer``) to ``path``; ``fastnn.save`` of a model."""
    config, arrays = model_state(model)
    meta = {"kind": "nn", **config}
    if optimizer is not None:
        scalars, opt_arrays = _optimizer_state(optimizer)
        meta["optimizer"] = scalars
        arrays.update(opt_arrays)
    _archive.write(path, _archive.pack(meta, arrays))

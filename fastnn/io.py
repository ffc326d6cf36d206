"""Saving and loading models without pickle.

A fastnn file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) holding plain numeric arrays
and one JSON document (stored as the bytes of a uint8 array named ``__fastnn__``) that describes
the architecture: layer class names, looked up in an allow-list registry of ``fastnn.nn`` layer
classes, and their ``get_config()`` values (JSON numbers, strings, lists, tuples, nested layers and
``fastnn.nn.init`` initialisers by name); the built input shape and dtype; the name, shape and
dtype of every array. ``load`` reads it with ``allow_pickle=False``, rebuilds the model from the
registry, builds it and copies the parameters and the layers' buffers (BatchNorm running
statistics). A truncated, corrupted or crafted file (not a zip, bad JSON, an unknown class, a
wrong shape or dtype, an object array) raises ``ValueError`` and runs no code beyond the
constructors of registered classes.

Other objects (the scikit-learn estimators) plug in through two methods::

    obj._fastnn_state() -> (config, arrays)            # JSON-serialisable dict, {name: ndarray}
    cls._from_fastnn_state(config, arrays) -> obj      # classmethod

``save`` stores ``config`` in the JSON document and ``arrays`` as plain arrays; ``load`` calls
``_from_fastnn_state`` of the class named in the file, which must live in a module listed in
``OBJECT_MODULES`` (``fastnn.sklearn``) or be registered with ``register_object``. Such an object
may embed models with ``model_state(model) -> (config, arrays)`` and
``model_from_state(config, arrays) -> model``.
"""
import importlib
import io as _io
import json
import numbers
import os
import tempfile
import zipfile
import zlib

import numpy as np

__all__ = ["save", "load", "model_state", "model_from_state", "model_buffers",
           "register_layer", "register_object", "OBJECT_MODULES", "FORMAT_VERSION"]

FORMAT_VERSION = 1
_META_KEY = "__fastnn__"
_LAYER_MODULES = ("fastnn.nn.base", "fastnn.nn.layers", "fastnn.nn.recurrent")
OBJECT_MODULES = ("fastnn.sklearn",)
_EXTRA_LAYERS = {}
_EXTRA_OBJECTS = {}
_FLOAT_DTYPES = ("float32", "float64")


class _Invalid(ValueError):
    """Raised inside ``load`` for anything wrong with the file; re-raised as ValueError."""


# --- registries ----------------------------------------------------------------------------------

def _layer_registry():
    from .nn.base import Layer
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
    from .nn.base import Layer
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer takes a Layer subclass, got {cls!r}")
    _EXTRA_LAYERS[name or cls.__name__] = cls
    return cls


def register_object(cls):
    """Allow ``load`` to rebuild ``cls`` through its ``_from_fastnn_state`` classmethod."""
    if not (isinstance(cls, type) and hasattr(cls, "_from_fastnn_state")):
        raise TypeError("register_object takes a class with a _from_fastnn_state classmethod")
    _EXTRA_OBJECTS[_class_path(cls)] = cls
    return cls


def _class_path(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _object_class(path):
    if not isinstance(path, str):
        raise _Invalid("the object class must be a string")
    if path in _EXTRA_OBJECTS:
        return _EXTRA_OBJECTS[path]
    modname, _, name = path.rpartition(".")
    if modname not in OBJECT_MODULES or not name.isidentifier():
        raise _Invalid(f"class {path!r} is not one that fastnn.load rebuilds "
                       f"(allowed: classes of {', '.join(OBJECT_MODULES)} and registered ones)")
    module = importlib.import_module(modname)
    cls = vars(module).get(name)
    if not isinstance(cls, type) or not hasattr(cls, "_from_fastnn_state"):
        raise _Invalid(f"{path!r} is not a class that can be loaded")
    return cls


# --- config values <-> JSON ----------------------------------------------------------------------

def _encode(value, where):
    from .nn.base import Layer
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
        from .nn import init
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
            from .nn import init
            fn = getattr(init, inner, None) if inner in getattr(init, "__all__", ()) else None
            if callable(fn):
                return fn
    raise _Invalid(f"unexpected configuration value {value!r}")


def _describe(layer):
    name = type(layer).__name__
    registry = _layer_registry()
    if registry.get(name) is not type(layer):
        raise TypeError(f"cannot save a {_class_path(type(layer))}: only fastnn.nn layers (or "
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
    from .nn.base import Sequential
    try:
        if issubclass(cls, Sequential):
            layers = kwargs.pop("layers", [])
            if not isinstance(layers, list):
                raise TypeError("layers must be a list")
            return cls(*layers, **kwargs)
        return cls(**kwargs)
    except Exception as err:  # a constructor rejecting its arguments: the file is at fault
        raise _Invalid(f"invalid configuration for {name}: {err}") from None


# --- model state ---------------------------------------------------------------------------------

def model_buffers(model):
    """Non-trainable state arrays of every layer, by path (``"3/running_mean"``), in model order."""
    out = {}

    def walk(layer, prefix):
        subs = getattr(layer, "layers", None)
        if isinstance(subs, list):
            for i, sub in enumerate(subs):
                walk(sub, f"{prefix}{i}/")
        buffers = getattr(layer, "buffers", None)
        if callable(buffers):
            for name, arr in buffers().items():
                if arr is not None:
                    out[prefix + name] = arr

    walk(model, "")
    return out


def model_state(model):
    """``(config, arrays)`` of a fastnn.nn model: a JSON-serialisable description and its arrays."""
    from .nn.base import Layer
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
    from .nn._array import to_host
    return to_host(a)


def _int_list(value, what):
    if not isinstance(value, list) or not all(
            v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
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
    else:
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
    from .nn import optimizers
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

def save(obj, path, optimizer=None):
    """Write a fastnn model (or an object with ``_fastnn_state``) to ``path`` (a file name or a
    binary file object); ``optimizer`` adds its state (``load(..., return_optimizer=True)``).

    The file is written to a temporary name and then renamed, so a reader never sees half a file.
    """
    from .nn.base import Layer
    if hasattr(obj, "_fastnn_state") and not isinstance(obj, Layer):
        config, arrays = obj._fastnn_state()
        if not isinstance(config, dict) or not isinstance(arrays, dict):
            raise TypeError("_fastnn_state() must return (dict, dict of arrays)")
        meta = {"kind": "object", "class": _class_path(type(obj)), "state": config}
        json.dumps(config)  # fail early on values JSON cannot hold
    elif isinstance(obj, Layer):
        config, arrays = model_state(obj)
        meta = {"kind": "nn", **config}
    else:
        raise TypeError(f"cannot save a {type(obj).__name__}: expected a fastnn.nn model or an "
                        "object with _fastnn_state()")
    arrays = dict(arrays)
    if optimizer is not None:
        scalars, opt_arrays = _optimizer_state(optimizer)
        meta["optimizer"] = scalars
        arrays.update(opt_arrays)
    keys = {}
    payload = {}
    for i, (name, arr) in enumerate(arrays.items()):
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"array {name!r} has dtype {arr.dtype}; only numeric arrays are saved")
        key = f"a{i}"
        keys[key] = name
        payload[key] = arr
    meta = {"format": "fastnn", "version": FORMAT_VERSION, "arrays": keys, **meta}
    payload[_META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buf = _io.BytesIO()
    np.savez(buf, **payload)
    data = buf.getvalue()
    if hasattr(path, "write"):
        path.write(data)
        return
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastnn-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_archive(data):
    """``(meta, arrays by logical name)`` from the bytes of a fastnn file; ``_Invalid`` if bad."""
    if not data.startswith(b"PK"):
        raise _Invalid("not a fastnn file (not a zip archive)")
    try:
        with np.load(_io.BytesIO(data), allow_pickle=False) as z:
            names = list(z.files)
            if _META_KEY not in names:
                raise _Invalid("not a fastnn file (no __fastnn__ description)")
            raw = z[_META_KEY]
            if raw.dtype != np.uint8 or raw.ndim != 1:
                raise _Invalid("the description must be a uint8 byte array")
            meta = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != "fastnn":
                raise _Invalid("not a fastnn file (wrong format tag)")
            version = meta.get("version")
            if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
                raise _Invalid(f"unsupported fastnn file version {version!r}")
            keys = meta.get("arrays")
            if not isinstance(keys, dict) or set(keys) != set(names) - {_META_KEY}:
                raise _Invalid("the archive's arrays do not match its description")
            arrays = {}
            for key, name in keys.items():
                if not isinstance(name, str):
                    raise _Invalid("array names must be strings")
                arr = z[key]
                if arr.dtype.kind not in "biuf" or arr.dtype.hasobject:
                    raise _Invalid(f"array {name!r} has unsupported dtype {arr.dtype}")
                arrays[name] = arr
    except _Invalid:
        raise
    except (ValueError, OSError, EOFError, KeyError, IndexError, TypeError, RuntimeError,
            zipfile.BadZipFile, zlib.error, UnicodeDecodeError, MemoryError, OverflowError) as err:
        raise _Invalid(f"corrupted or unreadable fastnn file: {type(err).__name__}: {err}") \
            from None
    return meta, arrays


def load(path, return_optimizer=False):
    """Read a file written by ``save``: the model (or object), rebuilt and filled.

    ``return_optimizer=True`` returns ``(model, optimizer)``, the optimizer rebuilt over the
    model's parameters with its saved state (None when the file has none). Raises ``ValueError``
    for a truncated, corrupted or crafted file.
    """
    if hasattr(path, "read"):
        data = path.read()
        where = getattr(path, "name", "file object")
    else:
        where = os.fspath(path)
        with open(where, "rb") as f:
            data = f.read()
    try:
        meta, arrays = _read_archive(data)
        kind = meta.get("kind")
        own = {k: v for k, v in arrays.items() if not k.startswith("optimizer/")}
        opt_arrays = {k: v for k, v in arrays.items() if k.startswith("optimizer/")}
        if kind == "nn":
            obj = _model_from_state(meta, own)
        elif kind == "object":
            cls = _object_class(meta.get("class"))
            try:
                obj = cls._from_fastnn_state(meta.get("state"), own)
            except (TypeError, ValueError, KeyError) as err:
                raise _Invalid(f"invalid state for {meta.get('class')}: {err}") from None
        else:
            raise _Invalid(f"unknown kind {kind!r}")
        optimizer = None
        if "optimizer" in meta:
            if kind != "nn":
                raise _Invalid("optimizer state is only stored with nn models")
            optimizer = _optimizer_from_state(obj, meta["optimizer"], opt_arrays)
        elif opt_arrays:
            raise _Invalid("optimizer arrays without an optimizer description")
    except _Invalid as err:
        raise ValueError(f"{where}: {err}") from None
    except RecursionError:
        raise ValueError(f"{where}: the description is nested too deeply") from None
    return (obj, optimizer) if return_optimizer else obj

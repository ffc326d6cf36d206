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
import stat
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
    from .nn.base import model_buffers as buffers
    return buffers(model)


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
    _write_atomically(os.fspath(path), data)


def _umask():
    """The process umask, read without changing it where the system allows (threads may be
    creating files meanwhile)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _TerminateAsExit:
    """While a save writes its temporary file, SIGTERM (default action: die at once) raises
    SystemExit instead, so the temporary is removed before the process ends."""

    def __enter__(self):
        import signal
        import threading
        self.previous = None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
            try:
                if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                    self.previous = signal.signal(signal.SIGTERM, self._exit)
            except (ValueError, OSError):
                self.previous = None
        return self

    @staticmethod
    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    def __exit__(self, *exc):
        if self.previous is not None:
            import signal
            signal.signal(signal.SIGTERM, self.previous)
        return False


def _write_atomically(path, data):
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it over
    ``path``: a reader sees the old file or the new one, never half of one. The new file gets
    the mode ``open()`` would give it (0666 less the umask). On any failure, an exception or
    SIGTERM, the temporary file is removed; its name (``.fastnn-*.tmp``) is never a model's."""
    folder = os.path.dirname(os.path.abspath(path))
    with _TerminateAsExit():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastnn-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                if hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), 0o666 & ~_umask())
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    try:  # the rename itself reaches the disk with the folder's entry
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# Limits of what ``load`` reads (a file from a stranger must not exhaust the process).
MAX_FILE_BYTES = 4 << 30       # the whole file, and every array's uncompressed size together
_MAX_META_BYTES = 16 << 20     # the JSON description
_MAX_MEMBERS = 100_000
_MAX_DEFLATE_RATIO = 100       # uncompressed / compressed size of a deflated member
_MEMBER_HEADER_BYTES = 1 << 16  # a .npy header is at most this long


def _read_file(path, max_bytes):
    """The bytes of ``path`` (a regular file only: no FIFO, device or directory), at most
    ``max_bytes`` of them, or of a binary file object."""
    if hasattr(path, "read"):
        data = path.read(max_bytes + 1)
        where = getattr(path, "name", "file object")
    else:
        where = os.fspath(path)
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        try:
            mode = os.fstat(fd).st_mode
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISREG(mode):
            os.close(fd)
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "not a regular file")
            raise ValueError(f"{where}: {kind}; fastnn.load reads regular files only")
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
    if not isinstance(data, bytes):
        raise ValueError(f"{where}: the file object must be opened in binary mode")
    if len(data) > max_bytes:
        raise ValueError(f"{where}: the file is larger than max_bytes={max_bytes}; pass a larger "
                         "max_bytes to fastnn.load if you trust it")
    return data, where


class _Archive:
    """A fastnn zip checked before any array is decompressed: unique ``.npy`` members, sizes
    within ``max_bytes`` (deflated members within ``_MAX_DEFLATE_RATIO``), every member's
    ``.npy`` header read and its shape and dtype matching the bytes it holds."""

    def __init__(self, data, max_bytes):
        if not data.startswith(b"PK"):
            raise _Invalid("not a fastnn file (not a zip archive)")
        self.zip = zipfile.ZipFile(_io.BytesIO(data))
        infos = self.zip.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise _Invalid(f"the archive has {len(infos)} members, more than {_MAX_MEMBERS}")
        self.infos = {}
        total = 0
        for info in infos:
            name = info.filename
            if not name.endswith(".npy") or "/" in name or "\\" in name or name.startswith("."):
                raise _Invalid(f"member {name!r} is not a .npy array of a fastnn file")
            key = name[:-4]
            if key in self.infos:
                raise _Invalid(f"member {name!r} appears twice")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _Invalid(f"member {name!r} uses an unsupported compression")
            if info.compress_type == zipfile.ZIP_DEFLATED and \
                    info.file_size > _MAX_DEFLATE_RATIO * max(info.compress_size, 1):
                raise _Invalid(f"member {name!r} declares {info.file_size} bytes from "
                               f"{info.compress_size} compressed (ratio above "
                               f"{_MAX_DEFLATE_RATIO})")
            total += info.file_size
            if total > max_bytes:
                raise _Invalid(f"the arrays take more than max_bytes={max_bytes} uncompressed")
            self.infos[key] = info
        if _META_KEY not in self.infos:
            raise _Invalid("not a fastnn file (no __fastnn__ description)")
        if self.infos[_META_KEY].file_size > _MAX_META_BYTES:
            raise _Invalid(f"the description is larger than {_MAX_META_BYTES} bytes")
        self.headers = {key: self._header(key) for key in self.infos}

    def _header(self, key):
        """``(shape, dtype)`` from the member's ``.npy`` header; its data size must match."""
        info = self.infos[key]
        with self.zip.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(
                    f, max_header_size=_MEMBER_HEADER_BYTES)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(
                    f, max_header_size=_MEMBER_HEADER_BYTES)
            else:
                raise _Invalid(f"member {key!r}: unsupported .npy version {version}")
            header_bytes = f.tell()
        if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
            raise _Invalid(f"array {key!r} has unsupported dtype {dtype}")
        count = 1
        for d in shape:
            count *= d
        if header_bytes + count * dtype.itemsize != info.file_size:
            raise _Invalid(f"array {key!r} declares shape {shape} of {dtype} but holds "
                           f"{info.file_size - header_bytes} bytes of data")
        return tuple(shape), dtype

    def read(self, key):
        with self.zip.open(self.infos[key]) as f:
            return np.lib.format.read_array(f, allow_pickle=False,
                                            max_header_size=_MEMBER_HEADER_BYTES)


def _read_archive(data, max_bytes=MAX_FILE_BYTES):
    """``(meta, arrays by logical name)`` from the bytes of a fastnn file; ``_Invalid`` if bad.

    Everything about the arrays (members, sizes, shapes, dtypes, their match with the
    description) is checked before any of them is decompressed."""
    try:
        archive = _Archive(data, max_bytes)
        shape, dtype = archive.headers[_META_KEY]
        if dtype != np.uint8 or len(shape) != 1:
            raise _Invalid("the description must be a uint8 byte array")
        meta = json.loads(archive.read(_META_KEY).tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != "fastnn":
            raise _Invalid("not a fastnn file (wrong format tag)")
        version = meta.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or \
                not 1 <= version <= FORMAT_VERSION:
            raise _Invalid(f"unsupported fastnn file version {version!r}")
        keys = meta.get("arrays")
        if not isinstance(keys, dict) or set(keys) != set(archive.infos) - {_META_KEY}:
            raise _Invalid("the archive's arrays do not match its description")
        if not all(isinstance(name, str) for name in keys.values()) or \
                len(set(keys.values())) != len(keys):
            raise _Invalid("array names must be distinct strings")
        headers = {name: archive.headers[key] for key, name in keys.items()}
        if meta.get("kind") == "nn":
            _check_declared_arrays(meta, headers)
        arrays = {name: archive.read(key) for key, name in keys.items()}
    except _Invalid:
        raise
    except (ValueError, OSError, EOFError, KeyError, IndexError, TypeError, RuntimeError,
            zipfile.BadZipFile, zlib.error, UnicodeDecodeError, MemoryError, OverflowError,
            NotImplementedError) as err:
        raise _Invalid(f"corrupted or unreadable fastnn file: {type(err).__name__}: {err}") \
            from None
    return meta, arrays


def _check_declared_arrays(meta, headers):
    """The shapes the description gives its parameters and buffers must be the arrays' own."""
    for group, prefix, label in (("params", "param/", "parameter"),
                                 ("buffers", "buffer/", "buffer")):
        entries = meta.get(group, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _Invalid(f"{group} must be a list of objects")
        for i, entry in enumerate(entries):
            name = f"{prefix}{i}" if group == "params" else f"{prefix}{entry.get('path')}"
            if name not in headers:
                continue  # reported with the other missing arrays
            declared = entry.get("shape")
            shape, dtype = headers[name]
            if not isinstance(declared, list) or tuple(declared) != shape:
                raise _Invalid(f"{label} {name!r} is described with shape {declared!r} but the "
                               f"array has shape {shape}")
            if dtype.kind != "f":
                raise _Invalid(f"{label} {name!r} must be a float array, got dtype {dtype}")


# Parameter values a model may create beyond those its file holds: the random initial weights of
# a layer that builds in its constructor (``Dense(in_features=...)``) inside an unbuilt model,
# which are not stored. 4M values (16 MB in float32) bound what such a description can cost.
UNSTORED_VALUES = 1 << 22


def _values_in(arrays, prefixes=("",)):
    """Float values a file holds under ``prefixes``, plus ``UNSTORED_VALUES``: what the models
    it describes may allocate."""
    return UNSTORED_VALUES + sum(a.size for name, a in arrays.items()
                                 if name.startswith(prefixes) and a.dtype.kind == "f")


def load(path, return_optimizer=False, max_bytes=MAX_FILE_BYTES):
    """Read a file written by ``save``: the model (or object), rebuilt and filled.

    ``return_optimizer=True`` returns ``(model, optimizer)``, the optimizer rebuilt over the
    model's parameters with its saved state (None when the file has none). Raises ``ValueError``
    for a truncated, corrupted or crafted file, for a path that is not a regular file, and for a
    file (or uncompressed arrays) above ``max_bytes``. Every size, shape and dtype is checked
    before anything is allocated for it, and the model may create no more parameter values than
    the file holds.
    """
    from .nn.base import parameter_budget
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, numbers.Integral) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    data, where = _read_file(path, int(max_bytes))
    try:
        meta, arrays = _read_archive(data, int(max_bytes))
        del data
        kind = meta.get("kind")
        own = {k: v for k, v in arrays.items() if not k.startswith("optimizer/")}
        opt_arrays = {k: v for k, v in arrays.items() if k.startswith("optimizer/")}
        if kind == "nn":
            with parameter_budget(_values_in(own, ("param/", "buffer/"))):
                obj = _model_from_state(meta, own)
        elif kind == "object":
            cls = _object_class(meta.get("class"))
            try:
                # an estimator holds its model and the layer list it was given (a copy of it)
                with parameter_budget(2 * _values_in(own)):
                    obj = cls._from_fastnn_state(meta.get("state"), own)
            except _Invalid:
                raise
            except Exception as err:  # any failure to rebuild is the file's
                raise _Invalid(f"invalid state for {meta.get('class')}: "
                               f"{type(err).__name__}: {err}") from None
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

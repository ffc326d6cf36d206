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
import json

from ._archive import (FORMAT_VERSION, MAX_FILE_BYTES, _Invalid, pack, read_archive,  # noqa: F401
                       read_file, write)
from .nn._state import (_layer_registry, _model_from_state,  # noqa: F401 (re-exported)
                        _optimizer_from_state, _optimizer_state, class_path, model_from_state,
                        model_state, register_layer, save_model)
from .nn.base import Layer, model_buffers, parameter_budget  # noqa: F401
from ._kernels._validate import is_int

__all__ = ["save", "load", "model_state", "model_from_state", "model_buffers",
           "register_layer", "register_object", "OBJECT_MODULES", "FORMAT_VERSION"]

OBJECT_MODULES = ("fastnn.sklearn",)
_EXTRA_OBJECTS = {}


def register_object(cls):
    """Allow ``load`` to rebuild ``cls`` through its ``_from_fastnn_state`` classmethod."""
    if not (isinstance(cls, type) and hasattr(cls, "_from_fastnn_state")):
        raise TypeError("register_object takes a class with a _from_fastnn_state classmethod")
    _EXTRA_OBJECTS[class_path(cls)] = cls
    return cls


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


def save(obj, path, optimizer=None):
    """Write a fastnn model (or an object with ``_fastnn_state``) to ``path`` (a file name or a
    binary file object); ``optimizer`` adds its state (``load(..., return_optimizer=True)``).

    The file is written to a temporary name and then renamed, so a reader never sees half a file.
    """
    if isinstance(obj, Layer):
        save_model(obj, path, optimizer)
        return
    if not hasattr(obj, "_fastnn_state"):
        raise TypeError(f"cannot save a {type(obj).__name__}: expected a fastnn.nn model or an "
                        "object with _fastnn_state()")
    if optimizer is not None:
        raise TypeError("optimizer= saves the state of a fastnn.nn optimizer with its model; "
                        f"a {type(obj).__name__} keeps its own optimizer state")
    config, arrays = obj._fastnn_state()
    if not isinstance(config, dict) or not isinstance(arrays, dict):
        raise TypeError("_fastnn_state() must return (dict, dict of arrays)")
    json.dumps(config)  # fail early on values JSON cannot hold
    meta = {"kind": "object", "class": class_path(type(obj)), "state": config}
    write(path, pack(meta, arrays))


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
    if not is_int(max_bytes) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
    data, where = read_file(path, int(max_bytes))
    try:
        meta, arrays = read_archive(data, int(max_bytes))
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

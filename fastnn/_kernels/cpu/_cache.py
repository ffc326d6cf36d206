"""fastnn's kernel cache: Numba's on-disk cache, made to heal.

``_jit.jit`` gives every CPU dispatcher a ``KernelCache`` in place of Numba's ``FunctionCache``
(``cache=True``). Same folders and file kinds (``<function>.nbi`` index, ``<function>.<id>.nbc``
data), with these differences:

- A damaged entry (truncated, random bytes, unreadable) is a cache miss: the file is removed
  where it can be (skipped where not), the kernel compiles again and is saved afresh, and one
  ``KernelCacheWarning`` per process and folder says so. Numba raises ``UnpicklingError`` on every
  call instead. Entries of another Numba version (or of plain Numba) are stale, not damaged: a
  miss without a warning, as in Numba; Numba's numbered data files of a function are removed
  when its stale index is replaced.
- Each data file is named from a hash of its index key (Numba numbers them from the index it
  read, so two processes saving two signatures at once can both write ``.1.nbc``) and begins
  with a header: the Numba version, the key, the source stamp and a SHA-256 of the payload. A
  file that does not match is a miss, never another signature's (or another Numba's) code.
  Data is written before the index, and a key the index lacks (two processes rewrote it at
  once, the later one won) is still found by its file name.
- Where nothing can be written (``NUMBA_CACHE_DIR`` read-only or impossible, a full disk, a
  folder that became read-only), kernels compile in memory and one warning says how to fix it;
  an existing read-only folder is still read. A ``NUMBA_CACHE_DIR`` that cannot be written is
  not silently replaced by another folder (Numba falls back to ``__pycache__`` or
  ``~/.cache/numba``), and fastnn imports where Numba would raise "no locator available".

Numba internals relied on (numba 0.68): ``Dispatcher._cache`` (what ``enable_caching`` sets;
``Dispatcher.compile`` calls its ``load_overload``/``save_overload``), ``caching.Cache``
(``_impl``, ``_cache_path``, ``_cache_file``, ``_enabled``, ``_index_key``, ``_load_overload``,
``_save_overload``), ``CacheImpl._locator_classes`` and the locators' ``from_function``,
``ensure_cache_path``, ``get_suitable_cache_subpath``, and ``IndexDataCacheFile`` (``_index_path``,
``_source_stamp``, ``_version``, ``_load_index``, ``_save_index``, ``_data_path``, ``_dump``,
``_open_for_write``), ``numba.core.config.CACHE_DIR`` / ``CACHE_LOCATOR_CLASSES``.
"""
import functools
import hashlib
import importlib
import os
import pickle
import re
import sys
import threading
import warnings

import numba
from numba.core import config
from numba.core.caching import (CompileResultCacheImpl, FunctionCache, InTreeCacheLocator,
                                IndexDataCacheFile, NullCache, UserWideCacheLocator, _CacheLocator,
                                _SourceFileBackedLocatorMixin)

from ._linking import CODEGEN_REVISION

# the index's version field: Numba's version, this file format and how fastnn compiles (a plain
# Numba index, or one from another Numba or fastnn codegen, reads as stale)
_VERSION = f"{numba.__version__}+fastnn-cache-1+codegen-{CODEGEN_REVISION}"
_MAGIC = "fastnn-kernel-cache-1"
_FIX = "set NUMBA_CACHE_DIR to a writable folder"


class KernelCacheWarning(RuntimeWarning):
    """fastnn's kernel cache found a damaged entry and repaired it, or cannot write, so kernels
    compile in memory. Computations are unaffected; at most one per process and folder."""


_warned = set()
_warned_lock = threading.Lock()
# where a warning is not attributed: fastnn, Numba, the import machinery
_INSIDE = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                for m in (sys.modules["fastnn"], numba, importlib)) + ("<frozen importlib",)


def _warn(folder, kind, message):
    """Warn once per process, folder and kind, at the first caller outside fastnn and Numba."""
    with _warned_lock:
        if (folder, kind) in _warned:
            return
        _warned.add((folder, kind))
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_INSIDE):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, KernelCacheWarning, stacklevel=2)
    else:
        g = frame.f_globals
        warnings.warn_explicit(message, KernelCacheWarning, frame.f_code.co_filename,
                               frame.f_lineno, g.get("__name__"),
                               g.setdefault("__warningregistry__", {}))


def _reason(exc):
    return f"{type(exc).__name__}: {exc}"


def _default_folder(py_file):
    """The folder Numba's first locator would pick: ``NUMBA_CACHE_DIR``'s subfolder for the
    source folder, else ``__pycache__`` beside the source."""
    if config.CACHE_DIR:
        return os.path.join(config.CACHE_DIR, _CacheLocator.get_suitable_cache_subpath(py_file))
    return os.path.join(os.path.dirname(py_file), "__pycache__")


class _ReadOnlyLocator(_SourceFileBackedLocatorMixin, _CacheLocator):
    """The last resort: the folder Numba would use, though it cannot be written. Entries
    already there load; saving fails in ``ensure_cache_path`` (and warns)."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = _default_folder(py_file)

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):  # no ensure_cache_path here: it fails
        return cls(py_func, py_file) if os.path.exists(py_file) else None


class _Impl(CompileResultCacheImpl):
    """Numba's locators, less the fall-backs when NUMBA_CACHE_DIR is set, plus the last resort."""

    def __init__(self, py_func):
        if not config.CACHE_LOCATOR_CLASSES:
            fallbacks = (InTreeCacheLocator, UserWideCacheLocator) if config.CACHE_DIR else ()
            self._locator_classes = [c for c in self._locator_classes if c not in fallbacks]
            self._locator_classes.append(_ReadOnlyLocator)
        super().__init__(py_func)


# ``from .x import a, b`` or ``from ..y import (a,\n b)``: the dots, the module, the names
_RELATIVE_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+(\.+)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n]*)", re.MULTILINE)


@functools.lru_cache(maxsize=None)
def _file(path):
    """(digest of the file's bytes, the source files it imports relatively); read once."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return "", ()
    found = []
    for dots, module, names in _RELATIVE_IMPORT.findall(data.decode("utf-8", "replace")):
        base = os.path.dirname(path)
        for _ in range(len(dots) - 1):
            base = os.path.dirname(base)
        target = os.path.join(base, *module.split(".")) if module else base
        for candidate in ([target + ".py", os.path.join(target, "__init__.py")]
                          + [os.path.join(target, n.split()[0] + ".py")
                             for n in re.sub(r"#[^\n]*|[()]", "", names).split(",")
                             if n.split()]):
            if os.path.isfile(candidate):
                found.append(candidate)
    return hashlib.sha256(data).hexdigest(), tuple(found)


@functools.lru_cache(maxsize=None)
def _sources(py_file):
    """``py_file`` and every source file it imports relatively, directly or not (a kernel's
    helpers in sibling modules and in the shared modules above them)."""
    seen, todo = set(), [os.path.abspath(py_file)]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(_file(path)[1])
    return tuple(sorted(seen))


@functools.lru_cache(maxsize=None)
def sources_digest(py_file):
    """A digest of the contents of ``_sources(py_file)``: part of every entry's source stamp,
    so that an edit to a helper in another file makes the kernels that use it stale (Numba's
    own stamp sees the kernel's file only)."""
    h = hashlib.sha256()
    for path in _sources(py_file):
        h.update(os.path.basename(path).encode() + _file(path)[0].encode())
    return h.hexdigest()[:16]


class _CacheFile(IndexDataCacheFile):
    """Numba's index and data files, with key-named, self-checking data files, and a source
    stamp that covers the kernel's helpers in other files (computed at first use)."""

    def __init__(self, cache_path, filename_base, source_stamp, py_file):
        self._py_file = py_file
        super().__init__(cache_path, filename_base, source_stamp)
        self._version = _VERSION
        self._base = filename_base

    @property
    def _source_stamp(self):
        return (self._own_stamp, sources_digest(self._py_file))

    @_source_stamp.setter
    def _source_stamp(self, stamp):  # Numba's (mtime, size) of the kernel's own file
        self._own_stamp = stamp

    def data_name(self, key):
        return f"{self._base}.{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}.nbc"

    def save(self, key, data):
        name = self.data_name(key)
        payload = self._dump(data)
        header = self._dump((_MAGIC, self._version, key, self._source_stamp,
                             hashlib.sha256(payload).digest()))
        with self._open_for_write(self._data_path(name)) as f:
            f.write(header)
            f.write(payload)
        overloads = self._load_index()
        if not overloads:  # a new, stale or foreign index: Numba's numbered files are orphans
            self._remove_data(numbered_only=True)
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)

    def _remove_data(self, numbered_only):
        """Remove this function's data files: all, or only Numba's numbered ones."""
        prefix = self._base + "."
        try:
            names = os.listdir(self._cache_path)
        except OSError:
            return
        for name in names:
            middle = name[len(prefix):-4]
            if not (name.startswith(prefix) and name.endswith(".nbc")) or "." in middle:
                continue
            if numbered_only and not (middle.isdigit() and len(middle) < 16):
                continue
            try:
                os.unlink(os.path.join(self._cache_path, name))
            except OSError:
                pass

    def flush(self):
        """``Dispatcher.recompile``: forget this function's entries (data files are found by
        name, so an empty index is not enough)."""
        self._remove_data(numbered_only=False)
        super().flush()

    def load(self, key):
        path = self._data_path(self._load_index().get(key) or self.data_name(key))
        try:
            with open(path, "rb") as f:
                header = pickle.load(f)
                payload = f.read()
        except FileNotFoundError:
            return None
        except Exception as exc:  # unreadable, truncated, random bytes
            self.damaged(path, exc)
            return None
        if isinstance(header, tuple) and header and str(header[0]).startswith(_MAGIC[:-1]) \
                and header[0] != _MAGIC:
            return None  # another fastnn's format: stale, not damaged
        if not (isinstance(header, tuple) and len(header) == 5 and header[0] == _MAGIC
                and header[4] == hashlib.sha256(payload).digest()):
            self.damaged(path, "its header or checksum does not match")
            return None
        if header[1:4] != (self._version, key, self._source_stamp):
            return None  # another Numba's, another signature's code, older source: a miss
        try:
            return pickle.loads(payload)
        except Exception as exc:
            self.damaged(path, exc)
            return None

    def _load_index(self):
        try:
            overloads = super()._load_index()  # {} when missing, stale or of another version
            if not isinstance(overloads, dict):
                raise TypeError(f"the index holds a {type(overloads).__name__}, not a dict")
            return overloads
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except Exception as exc:  # unreadable, truncated, random bytes
            self.damaged(self._index_path, exc)
            return {}

    def damaged(self, path, why):
        index = path == self._index_path
        try:
            os.unlink(path)
            done = "removed it"
        except FileNotFoundError:
            done = "another process removed it"
        except OSError as exc:
            done = f"could not remove it ({exc.strerror}) and skips it"
        why = why if isinstance(why, str) else _reason(why)
        _warn(self._cache_path, "damaged",
              f"fastnn's kernel cache in {self._cache_path}: {os.path.basename(path)} is "
              f"unreadable or damaged ({why}); fastnn {done}"
              + (" (an index: the kernels it lists still load). " if index
                 else ", and the kernel compiles again. ")
              + "Further damaged entries in this folder are repaired without a warning "
              "('fastnn cache clear' empties the cache).")


class KernelCache(FunctionCache):
    """Numba's ``FunctionCache`` that heals: see the module's docstring."""
    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _CacheFile(self._cache_path, self._impl.filename_base,
                                      self._cache_file._source_stamp,
                                      getattr(self._impl.locator, "_py_file", None)
                                      or py_func.__code__.co_filename)
        self._readable = os.path.isdir(self._cache_path)

    @property
    def writable(self):
        return not isinstance(self._impl.locator, _ReadOnlyLocator)

    def _load_overload(self, sig, target_context):
        if not (self._enabled and self._readable):
            return None
        key = self._index_key(sig, target_context.codegen())
        data = self._cache_file.load(key)
        if data is None:
            return None
        try:
            return self._impl.rebuild(target_context, data)
        except Exception as exc:
            self._cache_file.damaged(self._cache_file._data_path(self._cache_file.data_name(key)),
                                     exc)
            return None

    def save_overload(self, sig, data):
        try:
            self._save_overload(sig, data)
            self._readable = True
        except OSError as exc:
            _warn(self._cache_path, "unwritable",
                  f"fastnn's kernel cache folder {self._cache_path} cannot be written "
                  f"({_reason(exc)}): kernels compiled now stay in memory and compile again "
                  f"in every new process (entries already there still load). To keep them, "
                  f"{_FIX} (or free disk space there).")
        except Exception as exc:
            _warn(self._cache_path, "unsaved",
                  f"fastnn's kernel cache in {self._cache_path} could not save a kernel "
                  f"({_reason(exc)}); it stays in memory and compiles again in a new process.")


def use_kernel_cache(dispatcher):
    """Give ``dispatcher`` (made by ``numba.njit`` without ``cache``) fastnn's kernel cache."""
    if not hasattr(dispatcher, "_cache"):  # NUMBA_DISABLE_JIT: a plain function
        return dispatcher
    try:
        dispatcher._cache = KernelCache(dispatcher.py_func)
    except Exception as exc:  # no locator (NUMBA_CACHE_LOCATOR_CLASSES allows none here)
        dispatcher._cache = NullCache()
        _warn(None, "nowhere",
              f"fastnn's kernels cannot be cached ({_reason(exc)}): they compile in memory, "
              f"again in every new process. To keep them, {_FIX}.")
    return dispatcher


# ---------------------------------------------------------------------------- the folders

def _probe():
    """A function of this folder: its cache's folder is the one every CPU kernel uses."""


def cache_folder():
    """``(folder, writable)``: where fastnn's CPU kernels are cached in this process (the
    folder Numba's locators pick for ``fastnn/_kernels/cpu``); ``(None, False)`` if none."""
    try:
        impl = _Impl(_probe)
    except RuntimeError:
        return None, False
    return impl.locator.get_cache_path(), not isinstance(impl.locator, _ReadOnlyLocator)


def candidate_folders():
    """Every folder fastnn's CPU kernels may have been cached in: ``NUMBA_CACHE_DIR``'s
    subfolder, ``__pycache__`` beside the source, the user's cache folder (existing ones)."""
    py_file = os.path.abspath(__file__)
    found = [cache_folder()[0], _default_folder(py_file),
             os.path.join(os.path.dirname(py_file), "__pycache__")]
    try:
        found.append(UserWideCacheLocator(_probe, py_file).get_cache_path())
    except Exception:  # no home folder
        pass
    out = []
    for f in found:
        if f and os.path.isdir(f) and os.path.realpath(f) not in map(os.path.realpath, out):
            out.append(f)
    return out


def _kernel_modules():
    here = os.path.dirname(os.path.abspath(__file__))
    return {name[:-3] for name in os.listdir(here) if name.endswith(".py")}


def entries(folder):
    """fastnn's kernel cache files in ``folder``: ``.nbi`` and ``.nbc`` files, and ``.tmp.``
    files left by an interrupted write, of the modules of ``fastnn/_kernels/cpu`` only."""
    modules = _kernel_modules()
    out = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return out
    for name in names:
        if name.partition(".")[0] not in modules:
            continue
        stem, tmp, _ = name.partition(".tmp.")
        if stem.endswith((".nbi", ".nbc")) and (tmp or stem == name):
            out.append(os.path.join(folder, name))
    return out


def clear(everywhere=False):
    """Remove fastnn's kernel cache entries from the folder in use (``everywhere``: from every
    candidate folder). Returns ``(removed, errors)``: lists of ``(path, bytes)`` and
    ``(path, reason)``."""
    folders = candidate_folders() if everywhere else [cache_folder()[0]]
    removed, errors = [], []
    for folder in folders:
        for path in entries(folder) if folder else []:
            try:
                size = os.lstat(path).st_size
                os.unlink(path)
                removed.append((path, size))
            except FileNotFoundError:
                pass
            except OSError as exc:
                errors.append((path, exc.strerror or str(exc)))
    return removed, errors

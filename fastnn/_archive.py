"""The fastnn file format, knowing nothing of models: a NumPy ``.npz`` archive of plain
numeric arrays and one JSON document (the bytes of a uint8 array named ``__fastnn__``).

``pack`` makes the bytes of a file, ``write`` puts them on disk atomically, ``read_file`` and
``read_archive`` read a file from a stranger within bounds of memory and time: every size,
shape and dtype is checked before anything is allocated for it. ``fastnn.nn`` (checkpoints) and
``fastnn.io`` (save/load) build on it.
"""
import io as _io
import json
import os
import stat
import tempfile
import zipfile
import zlib

import numpy as np
from ._kernels._validate import is_int

FORMAT_VERSION = 1
_META_KEY = "__fastnn__"


class _Invalid(ValueError):
    """Raised inside ``load`` for anything wrong with the file; re-raised as ValueError."""


def pack(meta, arrays):
    """The bytes of a fastnn file: ``arrays`` ({name: numeric array}) and the JSON ``meta``."""
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
    return buf.getvalue()


def write(path, data):
    """``data`` to ``path``: a binary file object, or a file name written atomically."""
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
_READ_CHUNK = 1 << 20          # a file's reads after the first ask for at most this much


def read_file(path, max_bytes):
    """The bytes of ``path`` (a regular file only: no FIFO, device or directory), at most
    ``max_bytes`` of them, or of a binary file object. Memory follows the bytes read, never
    ``max_bytes``: a file whose known size (``fstat``, or the rest of a seekable file object) is
    above ``max_bytes`` is refused before any byte is read; otherwise the first read asks for
    that size, the next ones, if it grew or its size is unknown, for 1 MiB each."""
    if hasattr(path, "read"):
        where = getattr(path, "name", "file object")
        if isinstance(path, _io.TextIOBase):
            raise ValueError(f"{where}: the file object must be opened in binary mode")
        size = _bytes_left(path)
        if size > max_bytes:
            raise _too_large(where, max_bytes)
        data = _read_at_most(path, max_bytes, size, where)
    else:
        where = os.fspath(path)
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        try:
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        mode = info.st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "not a regular file")
            raise ValueError(f"{where}: {kind}; fastnn.load reads regular files only")
        if info.st_size > max_bytes:
            os.close(fd)
            raise _too_large(where, max_bytes)
        with os.fdopen(fd, "rb") as f:
            data = _read_at_most(f, max_bytes, info.st_size, where)
    if len(data) > max_bytes:
        raise _too_large(where, max_bytes)
    return data, where


def _too_large(where, max_bytes):
    return ValueError(f"{where}: the file is larger than max_bytes={max_bytes}; pass a larger "
                      "max_bytes to fastnn.load if you trust it")


def _bytes_left(f):
    """The bytes between a seekable file object's position and its end; 0 if unknown."""
    try:
        if f.seekable():
            here = f.tell()
            end = f.seek(0, os.SEEK_END)
            f.seek(here)
            return max(end - here, 0)
    except (AttributeError, OSError, ValueError, TypeError):
        pass
    return 0


def _read_at_most(f, max_bytes, size, where):
    """``f.read`` until its end or past ``max_bytes``: first ``size + 1`` bytes (one more than
    expected, to see the end), then 1 MiB at a time. A single read's bytes are returned as they
    are (no copy)."""
    chunks = []
    total = 0
    want = size + 1
    while total <= max_bytes:
        chunk = f.read(min(want, max_bytes + 1 - total))
        if not isinstance(chunk, bytes):
            raise ValueError(f"{where}: the file object must be opened in binary mode")
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        want = _READ_CHUNK
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


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


def read_archive(data, max_bytes=MAX_FILE_BYTES):
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
        if not is_int(version) or \
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

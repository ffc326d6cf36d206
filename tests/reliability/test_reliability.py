"""Reliability: hostile model files, divergence, determinism across thread counts, safe saves.

Each test names the promise it checks; docs/RELIABILITY.md lists them with their figures.
"""
import io
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile

import numpy as np
import pytest

import fastnn
import fastnn.nn as nn
from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetRegressor


def _saved_bytes(obj):
    buf = io.BytesIO()
    fastnn.save(obj, buf)
    return buf.getvalue()


def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def _meta(members):
    return json.loads(np.load(io.BytesIO(members["__fastnn__.npy"])).tobytes().decode())


def _npy(arr):
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


def _zip(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as z:
        for name, raw in members:
            z.writestr(name, raw)
    return out.getvalue()


def _with_meta(members, meta):
    members = dict(members)
    members["__fastnn__.npy"] = _npy(np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return _zip(members.items())


def _dense_model():
    model = nn.Sequential(nn.Dense(3), nn.ReLU(), nn.Dense(2), seed=0)
    model.build((4,))
    return model


def _load_peak(data, **kwargs):
    """``fastnn.load`` of ``data``: (the ValueError's message, traced peak bytes)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as err:
            fastnn.load(io.BytesIO(data), **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(err.value), peak


# -- paths that are not files -------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="a FIFO; fastnn.load reads regular files only"):
        fastnn.load(fifo)
    link = tmp_path / "link.npz"
    link.symlink_to(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        fastnn.load(link)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_and_folders_are_refused(tmp_path):
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="a device"):
        fastnn.load(link)
    with pytest.raises(ValueError, match="a directory"):
        fastnn.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "missing.npz")


def test_a_symlink_to_a_real_file_loads(tmp_path):
    fastnn.save(_dense_model(), tmp_path / "real.npz")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")
    assert isinstance(fastnn.load(tmp_path / "link.npz"), nn.Sequential)


def test_file_objects_load_whatever_their_reads_return(tmp_path):
    data = _saved_bytes(_dense_model())

    class Trickle:  # no seek, and at most 100 bytes a read
        def __init__(self, data):
            self.rest = data

        def read(self, n):
            out, self.rest = self.rest[:min(n, 100)], self.rest[min(n, 100):]
            return out

    assert isinstance(fastnn.load(Trickle(data)), nn.Sequential)
    with pytest.raises(ValueError, match="larger than max_bytes=100"):
        fastnn.load(Trickle(data), max_bytes=100)
    (tmp_path / "model.npz").write_bytes(data)
    with open(tmp_path / "model.npz") as text, \
            pytest.raises(ValueError, match="must be opened in binary mode"):
        fastnn.load(text)
    trickle = Trickle(data)
    trickle.read = lambda n: "text"
    with pytest.raises(ValueError, match="must be opened in binary mode"):
        fastnn.load(trickle)


# -- size bombs: refused before anything large is read or allocated ----------------------------

def test_files_and_arrays_above_max_bytes_are_refused():
    data = _saved_bytes(_dense_model())
    with pytest.raises(ValueError, match="larger than max_bytes=100"):
        fastnn.load(io.BytesIO(data), max_bytes=100)
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        fastnn.load(io.BytesIO(data), max_bytes=0)
    assert isinstance(fastnn.load(io.BytesIO(data), max_bytes=len(data)), nn.Sequential)


def test_a_file_known_to_be_above_max_bytes_is_refused_before_any_read(tmp_path):
    """A file whose size is known (``fstat`` of a path, the rest of a seekable file object) and
    above ``max_bytes`` is refused before a byte of it is read: a sparse 5 GiB file against the
    default 4 GiB, and a real model file against a small ``max_bytes``."""
    from fastnn._archive import MAX_FILE_BYTES
    sparse = tmp_path / "huge.npz"
    with open(sparse, "wb") as f:
        f.truncate(MAX_FILE_BYTES + (1 << 30))
    model = tmp_path / "model.npz"
    model.write_bytes(_saved_bytes(_dense_model()))
    for path, limit in ((sparse, MAX_FILE_BYTES), (model, 100)):
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=f"larger than max_bytes={limit}; pass a larger"):
                fastnn.load(path, max_bytes=limit)
            with open(path, "rb") as f:
                with pytest.raises(ValueError, match=f"{re.escape(str(path))}: the file is "
                                                     f"larger than max_bytes={limit}"):
                    fastnn.load(f, max_bytes=limit)
                assert f.tell() == 0  # nothing was read
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20, (path, peak)
    buf = io.BytesIO(model.read_bytes())
    with pytest.raises(ValueError, match="larger than max_bytes=100"):
        fastnn.load(buf, max_bytes=100)
    assert buf.tell() == 0
    assert isinstance(fastnn.load(model, max_bytes=model.stat().st_size), nn.Sequential)


def test_a_decompression_bomb_is_refused_before_it_is_inflated():
    members = _members(_saved_bytes(_dense_model()))
    bomb = _npy(np.zeros(64 << 20, np.uint8))  # 64 MiB of zeros deflate to about 64 KiB
    data = _zip(list(members.items()) + [("a9.npy", bomb)], zipfile.ZIP_DEFLATED)
    assert len(data) < 1 << 20
    message, peak = _load_peak(data)
    assert "ratio above 100" in message
    assert peak < 8 << 20, peak


def test_a_member_whose_header_lies_about_its_size_is_refused():
    members = _members(_saved_bytes(_dense_model()))
    key = next(k for k in members if k != "__fastnn__.npy")
    real = np.load(io.BytesIO(members[key]))
    header = io.BytesIO()  # a header only, no data
    np.lib.format.write_array_header_1_0(header, {
        "descr": np.lib.format.dtype_to_descr(real.dtype), "fortran_order": False,
        "shape": (16000, 16000)})
    members[key] = header.getvalue()
    message, peak = _load_peak(_zip(members.items()))
    assert "declares shape (16000, 16000)" in message and peak < 8 << 20


def test_a_huge_declared_layer_is_refused_before_it_is_built():
    members = _members(_saved_bytes(_dense_model()))
    meta = _meta(members)
    first = meta["model"]["config"]["layers"][0]["__layer__"]
    first["config"]["units"] = 16000
    meta["built"]["input_shape"] = [16000]
    message, peak = _load_peak(_with_meta(members, meta))
    assert "Dense would create 256016000 parameter values, more than the 4194" in message
    assert peak < 16 << 20, peak  # a 16000 x 16000 float32 weight would be 1 GB
    meta["params"][0]["shape"] = [16000, 16000]  # the description agrees, the array does not
    message, peak = _load_peak(_with_meta(members, meta))
    assert "described with shape [16000, 16000]" in message and peak < 16 << 20


def test_a_layer_built_in_its_constructor_is_bounded_too():
    layer = nn.Dense(2, in_features=3, seed=0)
    members = _members(_saved_bytes(layer))
    meta = _meta(members)
    meta["model"]["config"].update(units=20000, in_features=20000)
    message, peak = _load_peak(_with_meta(members, meta))
    assert "would create" in message and peak < 16 << 20


# -- malformed archives ---------------------------------------------------------------------------

def test_members_that_are_not_npy_or_appear_twice_are_refused():
    members = _members(_saved_bytes(_dense_model()))
    with pytest.raises(ValueError, match="'notes.txt' is not a .npy array"):
        fastnn.load(io.BytesIO(_zip(list(members.items()) + [("notes.txt", b"hi")])))
    key = next(k for k in members if k != "__fastnn__.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        twice = _zip(list(members.items()) + [(key, members[key])])
    with pytest.raises(ValueError, match="appears twice"):
        fastnn.load(io.BytesIO(twice))


def test_every_failure_of_an_estimator_state_is_a_value_error():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    members = _members(_saved_bytes(est))
    meta = _meta(members)
    edits = {
        "fitted is a list": lambda m: m["state"].update(fitted=[]),
        "unknown activation": lambda m: m["state"]["params"].update(activation="swish"),
        "unknown parameter": lambda m: m["state"]["params"].update(colour="red"),
        "n_layers_ contradicts": lambda m: m["state"]["fitted"].update(n_layers_=7),
        "n_iter_ not an int": lambda m: m["state"]["fitted"].update(n_iter_="many"),
        "object labels": lambda m: m["state"]["binarizer"]["classes"].update(dtype="object"),
        "no labels": lambda m: m["state"].pop("binarizer"),
        "state is a list": lambda m: m.update(state=[]),
    }
    for what, edit in edits.items():
        crafted = json.loads(json.dumps(meta))
        edit(crafted)
        with pytest.raises(ValueError):
            fastnn.load(io.BytesIO(_with_meta(members, crafted)))
    assert fastnn.load(io.BytesIO(_with_meta(members, meta))).predict(X).shape == (40,)


# -- bounded memory: loading under an address-space limit (``ulimit -v``) ----------------------

_LIMIT_MB = 400  # address space allowed above the warmed-up process's size

_needs_rlimit_as = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.path.exists("/proc/self/status"),
    reason="needs Linux: resource.RLIMIT_AS and /proc/self/status")

_EVERY_KIND = textwrap.dedent("""
    import os, resource, sys, tempfile, warnings
    import numpy as np
    from sklearn.datasets import load_digits
    import fastnn
    import fastnn.nn as nn
    from fastnn.sklearn import (MLPClassifier, MLPRegressor, NeuralNetClassifier,
                                NeuralNetRegressor)

    X, y = load_digits(return_X_y=True)
    X, y = X[:120] / 16.0, y[:120]
    images, rows = X.reshape(-1, 1, 8, 8).astype(np.float32), X.reshape(-1, 8, 8)
    models = {
        "dense": (nn.Sequential(nn.Dense(16), nn.ReLU(), nn.Dense(10), seed=0), X),
        "cnn": (nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.ReLU(),
                              nn.MaxPool2D(2), nn.Flatten(), nn.Dense(10), seed=0), images),
        "lstm": (nn.Sequential(nn.LSTM(8), nn.Dense(10), seed=0), rows.astype(np.float32)),
        "gru": (nn.Sequential(nn.GRU(8), nn.Dense(10), seed=0), rows.astype(np.float32)),
        # graph containers: their layers, parameters and buffers nest inside the description
        "residual": (nn.Sequential(nn.Dense(16), nn.ReLU(),
                                   nn.Residual(nn.Dense(16), nn.ReLU(), nn.Dense(16)),
                                   nn.Residual(nn.Dense(8), nn.Tanh(), shortcut=nn.Dense(8)),
                                   nn.Dense(10), seed=0), X),
        "residual-cnn": (nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.ReLU(),
                                       nn.Residual(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(),
                                                   nn.ReLU()),
                                       nn.Flatten(), nn.Dense(10), seed=0), images),
        "branches": (nn.Sequential(
            nn.Branches([nn.Dense(8), nn.ReLU()],
                        nn.Residual(nn.Dense(8), nn.Tanh(), shortcut=nn.Dense(8)), merge="add"),
            nn.Branches(nn.Dense(4), [nn.Dense(6), nn.Tanh()]), nn.Dense(10), seed=0), X),
        "columns": (nn.Sequential(
            nn.Columns([(0, 63), (63, 64)], [nn.Dense(16), nn.ReLU()],
                       [nn.Embedding(17, 3), nn.Flatten()]),
            nn.Dense(10), seed=0),
            np.hstack([X[:, :63], np.round(X[:, 63:] * 16)]).astype(np.float32)),
    }
    for model, x in models.values():
        nn.fit(model, x, y, epochs=1, batch_size=32, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models["MLPClassifier"] = (MLPClassifier((8,), max_iter=2, random_state=0).fit(X, y), X)
        models["MLPRegressor"] = (MLPRegressor(hidden_layer_sizes=(8,), max_iter=2,
                                               random_state=0).fit(X, X[:, :2]), X)
        models["NeuralNetClassifier"] = (NeuralNetClassifier(
            [nn.Conv2D(4, 3), nn.ReLU(), nn.Flatten()], input_shape=(1, 8, 8), max_iter=2,
            random_state=0).fit(X, y), X)
        models["NeuralNetRegressor"] = (NeuralNetRegressor(max_iter=2, random_state=0).fit(
            X, X[:, :2]), X)
    expected = {name: model.predict(x) for name, (model, x) in models.items()}
    folder = tempfile.mkdtemp()
    warm = os.path.join(folder, "warm.fnn")
    fastnn.save(models["MLPClassifier"][0], warm)
    fastnn.load(warm).predict(X)

    with open("/proc/self/status") as f:
        vmsize = next(int(line.split()[1]) << 10 for line in f if line.startswith("VmSize:"))
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (vmsize + (LIMIT_MB << 20), hard))
    for name, (model, x) in models.items():
        path = os.path.join(folder, name + ".fnn")
        fastnn.save(model, path)
        with open(path, "rb") as f:  # a path and a file object alike
            for back in (fastnn.load(path), fastnn.load(f)):
                assert type(back) is type(model), name
                np.testing.assert_array_equal(back.predict(x), expected[name], err_msg=name)
    print("loaded", len(models), "kinds under", vmsize >> 20, "+", LIMIT_MB, "MB")
""")


@_needs_rlimit_as
def test_every_model_kind_saves_and_loads_under_an_address_space_limit(tmp_path):
    code = f"LIMIT_MB = {_LIMIT_MB}\n" + _EVERY_KIND
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "loaded 12 kinds under" in proc.stdout, proc.stdout


# The crafted-file tests (each file refused with a ValueError, or loaded: from paths and file
# objects), re-run by a pytest whose conftest.py sets RLIMIT_AS to its size +
# FASTNN_TEST_ADDRESS_LIMIT_MB before its first test.
_CRAFTED_FILE_TESTS = [
    "tests/reliability/test_reliability.py::" + name for name in (
        "test_a_fifo_is_refused_without_waiting_for_a_writer",
        "test_devices_and_folders_are_refused",
        "test_a_symlink_to_a_real_file_loads",
        "test_file_objects_load_whatever_their_reads_return",
        "test_files_and_arrays_above_max_bytes_are_refused",
        "test_a_file_known_to_be_above_max_bytes_is_refused_before_any_read",
        "test_a_decompression_bomb_is_refused_before_it_is_inflated",
        "test_a_member_whose_header_lies_about_its_size_is_refused",
        "test_a_huge_declared_layer_is_refused_before_it_is_built",
        "test_a_layer_built_in_its_constructor_is_bounded_too",
        "test_members_that_are_not_npy_or_appear_twice_are_refused",
        "test_every_failure_of_an_estimator_state_is_a_value_error")
] + [
    "tests/nn/test_io.py::" + name for name in (
        "test_good_file_loads", "test_truncated", "test_corrupted_bytes",
        "test_crc_mismatch_in_array_data", "test_zip_without_description",
        "test_crafted_description", "test_deeply_nested_description", "test_wrong_arrays",
        "test_pickled_object_array_is_refused")
] + [
    "tests/sklearn/test_io.py::test_crafted_class_path_is_refused",
    "tests/sklearn/test_io.py::test_crafted_estimator_arrays_are_refused_before_any_kernel_runs",
    "tests/sklearn/test_io.py::test_a_mismatched_optimizer_state_never_reaches_the_kernel",
]


@_needs_rlimit_as
def test_the_crafted_file_tests_pass_under_an_address_space_limit():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, FASTNN_TEST_ADDRESS_LIMIT_MB=str(_LIMIT_MB))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           *_CRAFTED_FILE_TESTS], capture_output=True, text=True, timeout=600,
                          cwd=root, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "fastnn: address space limited to" in out, out  # conftest.py did set the limit
    collected = re.search(r"collected (\d+) items", out)
    passed = re.search(r"\b(\d+) passed", out)
    assert collected and passed and "skipped" not in out, out
    assert int(passed.group(1)) == int(collected.group(1)) >= len(_CRAFTED_FILE_TESTS), out


# -- one divergence policy ------------------------------------------------------------------------

def test_fit_stops_at_the_diverging_epoch_and_restores_the_model():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 4)) * 1e3).astype(np.float32)
    y = (x.sum(1, keepdims=True) * 1e3).astype(np.float32)
    model = nn.Sequential(nn.Dense(8), nn.ReLU(), nn.Dense(1), seed=0)
    model.build((4,))
    before = model.flat.data.copy()
    epochs = []
    with pytest.raises(nn.DivergenceError, match="at epoch 1; the model is back") as err:
        nn.fit(model, x, y, loss="mse", optimizer="sgd", lr=1e6, epochs=30, batch_size=16,
               callbacks=[nn.LambdaCallback(lambda e, logs: epochs.append(e))])
    assert isinstance(err.value, ValueError) and isinstance(err.value, FloatingPointError)
    assert epochs == []  # stopped at the end of the first epoch, not after 30
    np.testing.assert_array_equal(model.flat.data, before)


def _diverging_regression():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    return X, X @ rng.standard_normal(5) * 1e4


@pytest.mark.parametrize("make", [
    lambda: MLPRegressor(solver="sgd", learning_rate_init=1e3, max_iter=30, random_state=0),
    lambda: NeuralNetRegressor(optimizer="sgd", learning_rate_init=1e3, max_iter=30,
                               random_state=0),
])
def test_estimators_raise_scikit_learns_error_and_keep_a_fitted_model(make):
    from sklearn.neural_network import MLPRegressor as SkMLPRegressor
    X, y = _diverging_regression()
    with pytest.raises(ValueError) as sk_err:
        SkMLPRegressor(solver="sgd", learning_rate_init=1e3, max_iter=30, random_state=0).fit(X, y)
    good = make().set_params(learning_rate_init=1e-3, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        good.fit(X, y / 1e4)
    before = good.predict(X)
    with pytest.raises(nn.DivergenceError) as err:
        good.set_params(learning_rate_init=1e3, max_iter=30).fit(X, y)
    assert str(err.value).startswith(str(sk_err.value))
    np.testing.assert_array_equal(good.predict(X), before)


# -- determinism across thread counts ----------------------------------------------------------

# -- saves --------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_a_saved_file_has_the_mode_the_umask_gives(tmp_path, umask):
    old = os.umask(umask)
    try:
        fastnn.save(_dense_model(), tmp_path / "m.npz")
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(old)
    assert (tmp_path / "m.npz").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "m.npz").stat().st_mode == (tmp_path / "plain").stat().st_mode


@pytest.mark.parametrize("fault", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_save_removes_its_temporary_and_keeps_the_old_file(tmp_path, monkeypatch, fault):
    path = tmp_path / "m.npz"
    fastnn.save(_dense_model(), path)
    old = path.read_bytes()

    def fail(fd):
        raise fault
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(fault)):
        fastnn.save(nn.Sequential(nn.Dense(5, in_features=2)), path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32",
                    reason="POSIX signals")
def test_sigterm_during_a_save_removes_the_temporary(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        import numpy as np
        import fastnn, fastnn.nn as nn
        path = {str(tmp_path / 'm.npz')!r}
        model = nn.Sequential(nn.Dense(4, in_features=3))
        fastnn.save(model, path)
        real_fsync = os.fsync
        def slow_fsync(fd):
            print("writing", flush=True)
            time.sleep(30)
        os.fsync = slow_fsync
        fastnn.save(nn.Sequential(nn.Dense(400, in_features=300)), path)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        assert any(p.name.startswith(".fastnn-") for p in tmp_path.iterdir())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.stdout.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    assert fastnn.load(tmp_path / "m.npz")[0].units == 4


def test_every_test_that_docs_reliability_names_exists():
    """docs/RELIABILITY.md cites its promises' tests as ``::test_name``: each one is defined."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    cited = re.findall(r"::(test_\w+)(\*?)", (root / "docs" / "RELIABILITY.md").read_text())
    defined = set()
    for path in (root / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    missing = [name + star for name, star in cited
               if not (any(d.startswith(name) for d in defined) if star else name in defined)]
    assert cited and not missing, missing

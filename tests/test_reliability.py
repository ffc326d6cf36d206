"""Reliability: hostile model files, divergence, determinism across thread counts, safe saves.

Each test names the promise it checks; docs/RELIABILITY.md lists them with their figures.
"""
import io
import json
import os
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
from fastnn.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor


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


# -- size bombs: refused before anything large is read or allocated ----------------------------

def test_files_and_arrays_above_max_bytes_are_refused():
    data = _saved_bytes(_dense_model())
    with pytest.raises(ValueError, match="larger than max_bytes=100"):
        fastnn.load(io.BytesIO(data), max_bytes=100)
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        fastnn.load(io.BytesIO(data), max_bytes=0)
    assert isinstance(fastnn.load(io.BytesIO(data), max_bytes=len(data)), nn.Sequential)


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
    header = _npy(np.zeros((16000, 16000), real.dtype))[:128]  # a header only, no data
    members[key] = header
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

def _every_layer_cnn():
    return [nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.ReLU(), nn.MaxPool2D(2),
            nn.Conv2D(6, 3, padding=1, groups=2), nn.PReLU(), nn.AvgPool2D(2),
            nn.Conv2DTranspose(3, 2, stride=2), nn.ELU(), nn.StochasticPool2D(2),
            nn.GlobalAvgPool2D(), nn.Dropout(0.2), nn.Dense(16), nn.Tanh(), nn.Dense(8),
            nn.GELU(), nn.LeakyReLU(), nn.Sigmoid()]


def _sequence_layers(cell):
    return [nn.Conv1D(4, 3, padding=1), nn.MaxPool1D(2), nn.AvgPool1D(1), nn.Reshape((4, 6)),
            cell(5, return_sequences=True), nn.Flatten(), nn.Dense(6), nn.Softmax()]


@pytest.mark.parametrize("case", ["cnn", "SimpleRNN", "LSTM", "GRU"])
def test_the_same_seed_gives_identical_weights_on_one_and_two_threads(case):
    rng = np.random.default_rng(0)
    if case == "cnn":
        X = rng.standard_normal((96, 2, 16, 16)).astype(np.float32)
        layers, shape = _every_layer_cnn, (2, 16, 16)
    else:
        X = rng.standard_normal((96, 4, 12)).astype(np.float32)
        layers, shape = (lambda: _sequence_layers(getattr(nn, case))), (4, 12)
    y = rng.integers(0, 3, 96)
    results = []
    for threads in (1, 2, 1):
        fastnn.set_num_threads(threads)
        try:
            est = NeuralNetClassifier(layers(), input_shape=shape, max_iter=2, batch_size=32,
                                      random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(X, y)
            results.append((est.model_.flat.data.copy(), est.predict_proba(X)))
        finally:
            fastnn.set_num_threads(None)
    for weights, proba in results[1:]:
        np.testing.assert_array_equal(weights, results[0][0])
        np.testing.assert_array_equal(proba, results[0][1])


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

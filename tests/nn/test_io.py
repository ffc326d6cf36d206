"""fastnn.save / fastnn.load of nn models (layers, Sequential, optimizer state): round trips,
and bad files that must raise ValueError."""
import io
import json
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import io as fio
from fastnn.nn import optimizers
from fastnn.nn import Branches, Columns, Residual, Sequential
from fastnn.nn.layers import (BatchNorm, Conv2D, Dense, Dropout, GlobalAvgPool2D, LeakyReLU,
                              MaxPool2D, ReLU, Tanh)
from fastnn.nn.recurrent import GRU, LSTM, SimpleRNN
from fastnn.nn.training import fit


def cnn():
    return Sequential(Conv2D(4, (3, 3), padding=1), BatchNorm(), ReLU(), MaxPool2D(2),
                      Conv2D(6, 3, stride=(1, 1), kernel_initializer="glorot_uniform"),
                      LeakyReLU(0.1), GlobalAvgPool2D(), Dropout(0.25), Dense(3), seed=0)


def images(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 2, 8, 8)).astype(np.float32), rng.integers(0, 3, n)


def sequences(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 5, 3)).astype(np.float32), rng.integers(0, 3, n)


def roundtrip(obj, tmp_path, **kwargs):
    path = tmp_path / "model.npz"
    fastnn.save(obj, path, **kwargs)
    return fastnn.load(path, return_optimizer="optimizer" in kwargs)


def test_cnn_with_batchnorm_roundtrip(tmp_path):
    x, y = images()
    model = cnn()
    fit(model, x, y, epochs=2, batch_size=8, seed=0)  # moves the BatchNorm running statistics
    assert not np.allclose(model[1].running_mean, 0)
    loaded = roundtrip(model, tmp_path)
    assert type(loaded) is Sequential and len(loaded) == len(model)
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert loaded[4].kernel_initializer == "glorot_uniform" and loaded[0].kernel_size == (3, 3)
    np.testing.assert_array_equal(loaded[1].running_mean, model[1].running_mean)
    np.testing.assert_array_equal(loaded[1].running_var, model[1].running_var)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    np.testing.assert_array_equal(loaded.flat.decay_mask, model.flat.decay_mask)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("rnn", [LSTM, GRU, SimpleRNN])
def test_recurrent_roundtrip(rnn, tmp_path):
    x, y = sequences()
    model = Sequential(rnn(6, return_sequences=True), rnn(5), Tanh(), Dense(3), seed=1)
    fit(model, x, y, epochs=1, batch_size=8, seed=0)
    loaded = roundtrip(model, tmp_path)
    assert loaded[0].return_sequences and not loaded[1].return_sequences
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def every_layer_models():
    from fastnn.nn import layers as L
    images = Sequential(L.Conv2D(3, 3, padding=1), L.PReLU(), L.Conv2DTranspose(2, 2, stride=2),
                        L.ELU(), L.AvgPool2D(2), L.StochasticPool2D(2), L.GELU(),
                        L.Reshape((-1,)), L.Dense(4), L.Sigmoid(), L.Softmax(), seed=0)
    signals = Sequential(L.Conv1D(3, 3, padding=1), L.MaxPool1D(2), L.AvgPool1D(2), L.Tanh(),
                         L.Flatten(), L.Dense(2), seed=0)
    from fastnn.nn import recurrent as R
    temporal = Sequential(L.Conv1D(4, 3, padding="causal", dilation=2), L.Reshape((12, 4)),
                          R.Bidirectional(R.GRU(3, return_sequences=True), merge="sum"),
                          L.Reshape((3, 12)), L.GlobalMaxPool1D(), L.Dense(2), seed=0)
    pooled = Sequential(L.Conv2D(2, 3, padding="same"), L.GlobalMaxPool2D(), L.Reshape((1, 2)),
                        L.GlobalAvgPool1D(), seed=0)
    tokens = Sequential(L.Embedding(12, 4, padding_idx=0), L.LayerNorm(), L.Flatten(),
                        L.Dense(2), seed=0)
    from fastnn.nn import graph as G
    graphs = Sequential(G.Columns([(0, 4), (4, 6)], [L.Dense(4), L.Tanh()], L.Dense(4)),
                        G.Residual(L.Dense(8), L.ReLU(), L.Dense(8), shortcut=L.Dense(8)),
                        G.Branches(L.Dense(2), [L.Dense(3), L.Tanh()], merge="concat"), seed=0)
    rng = np.random.default_rng(0)
    return [(tokens, rng.integers(0, 12, (3, 5))),
            (graphs, rng.random((3, 6)).astype(np.float32)),
            (images, rng.random((3, 2, 8, 8)).astype(np.float32)),
            (signals, rng.random((3, 2, 12)).astype(np.float32)),
            (temporal, rng.random((3, 2, 12)).astype(np.float32)),
            (pooled, rng.random((3, 2, 5, 4)).astype(np.float32))]


def test_every_layer_class_roundtrips(tmp_path):
    """Every registered layer class saves and loads (this list must grow with the registry)."""
    seen = set()
    for model, x in every_layer_models():
        y = model.predict(x)
        loaded = roundtrip(model, tmp_path)
        np.testing.assert_array_equal(loaded.predict(x), y)
        seen |= {type(layer).__name__ for layer in model.layers} | {"Sequential"}
    seen |= {"BatchNorm", "Dense", "Dropout", "MaxPool2D", "LeakyReLU", "ReLU",
             "GlobalAvgPool2D", "LSTM", "GRU", "SimpleRNN"}  # covered by the tests above
    assert set(fio._layer_registry()) - seen == set()


def test_float64_and_file_objects():
    x = np.random.default_rng(0).standard_normal((5, 4))
    model = Sequential(Dense(3), ReLU(), Dense(2), seed=0)
    model.build((4,), dtype=np.float64)
    buf = io.BytesIO()
    fastnn.save(model, buf)
    buf.seek(0)
    loaded = fastnn.load(buf)
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_unbuilt_model_and_single_layers(tmp_path):
    loaded = roundtrip(Sequential(Dense(7), ReLU(), Dense(2), seed=3), tmp_path)
    assert not loaded.built and loaded.seed == 3 and loaded[0].units == 7
    dense = Dense(4, in_features=3, seed=0)
    loaded = roundtrip(dense, tmp_path)
    assert isinstance(loaded, Dense) and loaded.built
    np.testing.assert_array_equal(loaded.weight.data, dense.weight.data)
    conv = Conv2D(2, 3, seed=0)
    x = np.random.default_rng(0).random((2, 3, 5, 5)).astype(np.float32)
    y = conv.forward(x)
    loaded = roundtrip(conv, tmp_path)
    np.testing.assert_array_equal(loaded.forward(x), y)


def test_optimizer_state_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 2, 32)
    model = Sequential(Dense(8), ReLU(), Dense(2), seed=0)
    model.build((4,))
    opt = optimizers.SGD(model, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    fit(model, x, y, epochs=2, optimizer=opt, shuffle=False)
    loaded, opt2 = roundtrip(model, tmp_path, optimizer=opt)
    assert isinstance(opt2, optimizers.SGD) and opt2.flat is loaded.flat
    assert opt2.t == opt.t and opt2.nesterov and opt2.momentum == 0.9
    fit(model, x, y, epochs=2, optimizer=opt, shuffle=False)
    fit(loaded, x, y, epochs=2, optimizer=opt2, shuffle=False)
    np.testing.assert_array_equal(loaded.flat.data, model.flat.data)
    assert fastnn.load(tmp_path / "model.npz", return_optimizer=False).built
    model_only = tmp_path / "plain.npz"
    fastnn.save(model, model_only)
    assert fastnn.load(model_only, return_optimizer=True)[1] is None


def test_save_rejects_unsaveable_things(tmp_path):
    with pytest.raises(TypeError, match="cannot save"):
        fastnn.save(object(), tmp_path / "x.npz")
    layer = Dense(3, kernel_initializer=lambda shape, rng=None, dtype=None, **k: np.zeros(shape))
    with pytest.raises(TypeError, match="kernel_initializer"):
        fastnn.save(Sequential(layer), tmp_path / "x.npz")
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


# --- bad files ------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    model = Sequential(Dense(4), BatchNorm(), ReLU(), Dense(2), seed=0)
    model.build((3,))
    path = tmp_path / "good.npz"
    fastnn.save(model, path)
    return path


def members(path):
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def npy_bytes(arr, allow_pickle=False):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def meta_of(path):
    with np.load(path) as z:
        return json.loads(z["__fastnn__"].tobytes())


def write_zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def with_meta(path, out, edit):
    files = members(path)
    meta = edit(meta_of(path))
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    files["__fastnn__.npy"] = npy_bytes(np.frombuffer(raw, np.uint8))
    return write_zip(out, files)


def test_good_file_loads(saved):
    assert fastnn.load(saved).built


@pytest.mark.parametrize("keep", [0, 1, 10, 100, 0.5, 0.9, -1])
def test_truncated(saved, tmp_path, keep):
    data = saved.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else (keep if keep >= 0 else len(data) - 1)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data[:n])
    with pytest.raises(ValueError):
        fastnn.load(bad)


def test_corrupted_bytes(saved, tmp_path):
    data = bytearray(saved.read_bytes())
    rng = np.random.default_rng(0)
    for _ in range(20):
        bad = bytearray(data)
        i = int(rng.integers(0, len(data)))
        bad[i] ^= 0xFF
        path = tmp_path / "bad.npz"
        path.write_bytes(bytes(bad))
        try:
            fastnn.load(path)
        except ValueError:
            pass  # every error is a ValueError (a flip in padding may go unnoticed)
    path.write_bytes(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="not a fastnn file"):
        fastnn.load(path)
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError):
        fastnn.load(path)


def test_crc_mismatch_in_array_data(saved, tmp_path):
    files = members(saved)
    key = next(k for k in files if k.startswith("a"))
    data = bytearray(files[key])
    data[-1] ^= 0x55
    bad = tmp_path / "bad.npz"
    raw = bytearray(write_zip(bad, files).read_bytes())
    start = raw.find(bytes(files[key]))
    raw[start + len(data) - 1] ^= 0x55  # change the stored bytes, keep the recorded CRC
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupted"):
        fastnn.load(bad)


def test_zip_without_description(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.zeros(3))
    with pytest.raises(ValueError, match="no __fastnn__"):
        fastnn.load(path)


@pytest.mark.parametrize("edit,match", [
    (lambda m: b"{not json", "corrupted"),
    (lambda m: b"\xff\xfe", "corrupted"),
    (lambda m: [1, 2], "format"),
    (lambda m: {**m, "format": "other"}, "format"),
    (lambda m: {**m, "version": 99}, "version"),
    (lambda m: {**m, "kind": "pickle"}, "kind"),
    (lambda m: {**m, "model": {"class": "system", "config": {}}}, "unknown layer class"),
    (lambda m: {**m, "model": {"class": "os.system", "config": {"command": "echo hi"}}},
     "unknown layer class"),
    (lambda m: {**m, "model": {"class": "Sequential", "config": {
        "layers": [{"__layer__": {"class": "Evil", "config": {}}}], "seed": 0}}},
     "unknown layer class"),
    (lambda m: {**m, "model": {"class": "Sequential", "config": {
        "layers": [{"__layer__": {"class": "Dense", "config": {"units": -4}}}], "seed": 0}}},
     "invalid configuration for Dense"),
    (lambda m: {**m, "model": {"class": "Sequential", "config": {
        "layers": [{"__layer__": {"class": "Dense", "config": {
            "units": 4, "kernel_initializer": {"__init__": "_generator"}}}}], "seed": 0}}},
     "unexpected configuration value"),
    (lambda m: {**m, "model": {"class": "Sequential", "config": {
        "layers": [{"__layer__": {"class": "Dense", "config": {"units": 4, "bogus": 1}}}],
        "seed": 0}}}, "invalid configuration for Dense"),
    (lambda m: {**m, "built": {"input_shape": [5], "dtype": "float32"}}, "shape"),
    (lambda m: {**m, "built": {"input_shape": ["3"], "dtype": "float32"}}, "input_shape"),
    (lambda m: {**m, "built": {"input_shape": [3], "dtype": "float16"}}, "dtype"),
    (lambda m: {**m, "built": {"input_shape": [3], "dtype": "object"}}, "dtype"),
    (lambda m: {**m, "built": None}, "unbuilt"),
    (lambda m: {**m, "arrays": {**m["arrays"], "a0": "param/99"}}, "do not match"),
    (lambda m: {**m, "params": m["params"][:-1]}, "do not match"),
    (lambda m: {**m, "buffers": []}, "do not match"),
    (lambda m: {**m, "optimizer": {"type": "Evil"}}, "optimizer"),
    (lambda m: {**m, "model": {"class": "Sequential", "config": {"layers": 5, "seed": 0}}},
     "Sequential"),
    (lambda m: {**m, "model": {"class": "Sequential", "config": {
        "layers": [{"__layer__": {"class": "Dense", "config": {"units": 4}}}] * 2, "seed": 0}}},
     "parameters"),
])
def test_crafted_description(saved, tmp_path, edit, match):
    bad = with_meta(saved, tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError, match=match):
        fastnn.load(bad)


def test_deeply_nested_description(saved, tmp_path):
    deep = '{"__tuple__": [' * 5000 + "4" + "]}" * 5000

    def edit(m):
        m = {**m, "model": {"class": "Dense", "config": {"units": "DEEP"}}}
        return json.dumps(m).replace('"DEEP"', deep).encode()

    bad = with_meta(saved, tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError):
        fastnn.load(bad)


def replace_array(path, out, name, arr, allow_pickle=False):
    meta = meta_of(path)
    key = next(k for k, v in meta["arrays"].items() if v == name)
    files = members(path)
    files[f"{key}.npy"] = npy_bytes(arr, allow_pickle)
    return write_zip(out, files)


@pytest.mark.parametrize("name,arr,match", [
    ("param/0", np.zeros((3, 4), np.float32), "shape"),
    ("param/0", np.zeros((4, 3), np.int64), "float"),
    ("buffer/1/running_mean", np.zeros(5, np.float32), "shape"),
    ("param/1", np.zeros(4, dtype=[("a", "f4")]), "dtype"),
    ("param/1", np.array(["abcd"] * 4), "dtype"),
])
def test_wrong_arrays(saved, tmp_path, name, arr, match):
    bad = replace_array(saved, tmp_path / "bad.npz", name, arr)
    with pytest.raises(ValueError, match=match):
        fastnn.load(bad)


class _Trap:
    """Unpickling this would run code: it must never happen."""
    triggered = False

    def __reduce__(self):
        return (_spring, ())


def _spring():
    _Trap.triggered = True
    return 0


def test_pickled_object_array_is_refused(saved, tmp_path):
    arr = np.empty(4, dtype=object)
    arr[:] = [_Trap() for _ in range(4)]
    bad = replace_array(saved, tmp_path / "bad.npz", "param/1", arr, allow_pickle=True)
    with pytest.raises(ValueError, match="corrupted|pickle|object"):
        fastnn.load(bad)
    assert not _Trap.triggered
    desc = replace_array(saved, tmp_path / "bad2.npz", "param/1", np.zeros(4, np.float32))
    files = members(desc)
    files["__fastnn__.npy"] = npy_bytes(np.array([_Trap()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError):
        fastnn.load(write_zip(tmp_path / "bad3.npz", files))
    assert not _Trap.triggered


# --- the hook for other objects -------------------------------------------------------------------

class Estimator:
    def __init__(self, scale=1.0):
        self.scale = scale
        self.model_ = None

    def _fastnn_state(self):
        config, arrays = fio.model_state(self.model_)
        return {"scale": self.scale, "model": config}, {f"model/{k}": v for k, v in arrays.items()}

    @classmethod
    def _from_fastnn_state(cls, config, arrays):
        est = cls(scale=config["scale"])
        est.model_ = fio.model_from_state(
            config["model"], {k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
        return est


def test_object_hook(tmp_path):
    est = Estimator(scale=2.5)
    est.model_ = Sequential(Dense(3), ReLU(), Dense(2), seed=0)
    est.model_.build((4,))
    path = tmp_path / "est.npz"
    fastnn.save(est, path)
    with pytest.raises(ValueError, match="not one that fastnn.load rebuilds"):
        fastnn.load(path)
    fio.register_object(Estimator)
    try:
        loaded = fastnn.load(path)
    finally:
        fio._EXTRA_OBJECTS.clear()
    assert isinstance(loaded, Estimator) and loaded.scale == 2.5
    np.testing.assert_array_equal(loaded.model_.flat.data, est.model_.flat.data)
    bad = with_meta(path, tmp_path / "bad.npz", lambda m: {**m, "class": "builtins.eval"})
    with pytest.raises(ValueError, match="not one that fastnn.load rebuilds"):
        fastnn.load(bad)


# --- crafted graph descriptions (Residual, Branches, Columns) ------------------------------------


@pytest.fixture
def saved_graph(tmp_path):
    model = Sequential(Columns([(0, 2), (2, 3)], Dense(2), [Dense(3), Tanh()]),
                       Residual(Dense(5), Tanh()), Branches(Dense(2), Dense(2), merge="add"),
                       Dense(2), seed=0)
    model.build((3,))
    path = tmp_path / "graph.npz"
    fastnn.save(model, path)
    return path


def _layer(cls, **config):
    return {"__layer__": {"class": cls, "config": config}}


def _graph_edit(change):
    """An edit of the description: ``change(columns, residual, branches)`` on the three containers'
    configurations (layers 0, 1 and 2 of the Sequential)."""
    def edit(meta):
        meta = json.loads(json.dumps(meta))
        layers = meta["model"]["config"]["layers"]
        change(*(layers[i]["__layer__"]["config"] for i in range(3)))
        return meta
    return edit


def _nested(depth, inner=None):
    spec = inner or {"class": "Dense", "config": {"units": 5}}
    for _ in range(depth):
        spec = {"class": "Residual", "config": {"layers": [{"__layer__": spec}]}}
    return spec


@pytest.mark.parametrize("change,match", [
    # a nested unknown class, inside each container
    (lambda c, r, b: r["layers"].__setitem__(0, _layer("Evil")), "unknown layer class 'Evil'"),
    (lambda c, r, b: b["branches"][1].__setitem__(0, _layer("os.system", command="x")),
     "unknown layer class 'os.system'"),
    (lambda c, r, b: c["branches"][1].append(_layer("Residual", layers=[_layer("Evil")]),),
     "unknown layer class 'Evil'"),
    (lambda c, r, b: r.__setitem__("shortcut", _layer("Evil")), "unknown layer class"),
    # layers / branches that are not lists
    (lambda c, r, b: r.__setitem__("layers", 5), "invalid configuration for Residual: layers "
                                                 "must be a list"),
    (lambda c, r, b: r.__setitem__("layers", _layer("Dense", units=5)),
     "Residual: layers must be a list"),
    (lambda c, r, b: b.__setitem__("branches", "ab"), "Branches: branches must be a list"),
    (lambda c, r, b: b.__setitem__("branches", [[_layer("Dense", units=2)], [3]]),
     "Branches.*takes fastnn.nn layers"),
    (lambda c, r, b: r.__setitem__("shortcut", [1]), "shortcut must be a fastnn.nn layer"),
    # a bad merge mode
    (lambda c, r, b: b.__setitem__("merge", "mul"), r"merge must be one of \('add', 'concat'\)"),
    (lambda c, r, b: c.__setitem__("merge", None), "Columns: merge must be one of"),
    (lambda c, r, b: b.__setitem__("extra", 1), "invalid configuration for Branches"),
    # bad Columns groups
    (lambda c, r, b: c.__setitem__("groups", [[0, 2], [1, 3]]), "overlap"),
    (lambda c, r, b: c.__setitem__("groups", [[0, 2]]), "one branch per column group"),
    (lambda c, r, b: c.__setitem__("groups", [[2, 0], [2, 3]]), "0 <= start < stop"),
    (lambda c, r, b: c.__setitem__("groups", [[-1, 2], [2, 3]]), "0 <= start < stop"),
    (lambda c, r, b: c.__setitem__("groups", [[0, 2.5], [2, 3]]), "pair"),
    (lambda c, r, b: c.__setitem__("groups", [[0, True], [2, 3]]), "pair"),
    (lambda c, r, b: c.__setitem__("groups", [[0, 1, 2], [2, 3]]), "pair"),
    (lambda c, r, b: c.__setitem__("groups", "0:2"), "groups must be a list"),
    (lambda c, r, b: c.__setitem__("groups", [5, [2, 3]]), "a column group is a"),
    (lambda c, r, b: c.pop("groups"), "one branch per column group"),
    # descriptions whose shapes do not build
    (lambda c, r, b: c.__setitem__("groups", [[0, 2], [2, 9]]),
     r"cannot build the model for input shape \(3,\).*Columns reads columns up to 9"),
    (lambda c, r, b: r["layers"][0]["__layer__"]["config"].__setitem__("units", 4),
     r"cannot build.*layer 1 \(Residual\).*projection shortcut"),
    (lambda c, r, b: b["branches"][1][0]["__layer__"]["config"].__setitem__("units", 3),
     r"cannot build.*layer 2 \(Branches\).*merge='concat'"),
    (lambda c, r, b: c["branches"][0].append(_layer("Conv2D", filters=2, kernel_size=3)),
     r"cannot build.*Columns, branch 0 \(columns 0:2\), layer 1 \(Conv2D\)"),
    # containers nested too deeply (within what JSON and the decoder take)
    (lambda c, r, b: r["layers"].__setitem__(0, {"__layer__": _nested(40)}),
     "nested more than 32 deep"),
])
def test_crafted_graph_description(saved_graph, tmp_path, change, match):
    bad = with_meta(saved_graph, tmp_path / "bad.npz", _graph_edit(change))
    with pytest.raises(ValueError, match=match):
        fastnn.load(bad)
    with pytest.raises(ValueError, match=match):   # the same from bytes in memory
        fastnn.load(io.BytesIO(bad.read_bytes()))


def test_graph_description_loads_unchanged_and_at_the_nesting_limit(saved_graph, tmp_path):
    assert type(fastnn.load(saved_graph)[1]) is Residual
    ok = with_meta(saved_graph, tmp_path / "ok.npz", _graph_edit(
        lambda c, r, b: r["layers"].__setitem__(0, {"__layer__": _nested(30)})))
    loaded = fastnn.load(ok)   # 31 containers deep: under the limit, the same parameters
    inner, depth = loaded[1], 0
    while isinstance(inner, Residual):
        inner, depth = inner.layers[0], depth + 1
    assert depth == 31 and type(inner) is Dense and loaded.built


def test_graph_nested_far_too_deeply_is_a_clean_error(saved_graph, tmp_path):
    """Beyond what the decoder's recursion takes: still a ValueError, never a RecursionError."""
    for depth in (200, 5000):
        deep = ('{"__layer__": {"class": "Residual", "config": {"layers": [' * depth
                + '{"__layer__": {"class": "Dense", "config": {"units": 5}}}' + "]}}}" * depth)

        def edit(meta, deep=deep):
            meta = _graph_edit(lambda c, r, b: r["layers"].__setitem__(0, "DEEP"))(meta)
            return json.dumps(meta).replace('"DEEP"', deep).encode()

        bad = with_meta(saved_graph, tmp_path / "bad.npz", edit)
        with pytest.raises(ValueError, match="nested too deeply|corrupted"):
            fastnn.load(bad)


def test_sequentials_nested_beyond_the_bound_are_refused_on_load(tmp_path):
    """A Sequential inside a Sequential ... 40 deep saves, and loads as a ValueError, not a deep
    recursion: the nesting bound counts Sequential as a container too."""
    model = Dense(2)
    for _ in range(40):
        model = Sequential(model)
    model(np.zeros((2, 3), np.float32))
    path = tmp_path / "deep.fastnn"
    fastnn.save(model, path)
    with pytest.raises(ValueError, match="nested more than 32 deep"):
        fastnn.load(path)

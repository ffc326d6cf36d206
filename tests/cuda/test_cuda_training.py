"""Models and the training loop on device="cuda": same results as on the CPU, data moved once.

Under the simulator (CI) and unchanged on real hardware (FASTNN_REAL_GPU=1). Shapes are tiny.
"""
import pickle

import numpy as np
import pytest
from numba import cuda

import fastnn
import fastnn.nn as nn
from fastnn.nn import _data

pytestmark = pytest.mark.cuda

F32 = dict(rtol=2e-4, atol=2e-5)


def _conv_model(seed=0):
    return nn.Sequential(nn.Conv2D(2, 3, padding=1, use_bias=False), nn.BatchNorm(), nn.ReLU(),
                         nn.MaxPool2D(2), nn.Flatten(), nn.Dropout(0.25), nn.Dense(3), seed=seed)


def _dense_model(seed=0, out=3):
    return nn.Sequential(nn.Dense(6), nn.Tanh(), nn.Dense(5), nn.PReLU(), nn.Dense(out),
                         seed=seed)


def _images(n=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, n))


def _table(n=14, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)).astype(dtype), rng.integers(0, 3, n)


def _same_params(a, b, **tol):
    assert b.device == "cuda" and a.device == "cpu"
    for p, q in zip(a.parameters(), b.parameters()):
        assert type(q.data) is not np.ndarray
        np.testing.assert_allclose(nn.to_host(q.data), p.data, err_msg=p.name, **(tol or F32))


def _same_history(ha, hb):
    assert ha.history.keys() == hb.history.keys()
    for key in ha.history:
        if key != "time":
            np.testing.assert_allclose(hb[key], ha[key], rtol=1e-4, atol=1e-6, err_msg=key)


def test_conv_model_fit_matches_cpu():
    x, y = _images()
    a, b = _conv_model(), _conv_model()
    kw = dict(epochs=2, batch_size=5, seed=1, validation_split=0.25)
    ha = nn.fit(a, x, y, **kw)
    hb = nn.fit(b, x, y, device="cuda", **kw)
    _same_params(a, b)
    _same_history(ha, hb)
    np.testing.assert_allclose(nn.to_host(b[1].running_var), a[1].running_var, **F32)
    out = b.predict(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(out, a.predict(x), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("options", [
    dict(optimizer="sgd", lr=0.1, weight_decay=0.01, optimizer_options={"momentum": 0.9}),
    dict(optimizer="adamw", lr=0.01, weight_decay=0.1),
    dict(optimizer="adam", lr=0.01, alpha=0.01, clip_norm=0.5),
    dict(optimizer="rmsprop", lr=0.01, schedule="cosine"),
    dict(optimizer="adagrad", lr=0.1, shuffle=False),
], ids=["sgd-decay", "adamw", "adam-l2-clip", "rmsprop-cosine", "adagrad-noshuffle"])
def test_dense_fit_matches_cpu(options):
    x, y = _table()
    a, b = _dense_model(), _dense_model()
    ha = nn.fit(a, x, y, epochs=3, batch_size=4, seed=2, **options)
    hb = nn.fit(b, x, y, epochs=3, batch_size=4, seed=2, device="cuda", **options)
    _same_params(a, b)
    _same_history(ha, hb)


def test_float64_mse_with_sample_weights_and_early_stopping():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]])
    w = rng.uniform(0.2, 2.0, 16)
    xv, yv = x[:5] + 0.1, y[:5]

    def run(device):
        model = nn.Sequential(nn.Dense(4), nn.ReLU(), nn.Dense(1), seed=4)
        stop = nn.EarlyStopping(patience=1, restore_best_weights=True)
        hist = nn.fit(model, x, y, loss="mse", lr=0.05, epochs=4, batch_size=6, seed=5,
                      sample_weight=w, validation_data=(xv, yv), callbacks=[stop],
                      device=device)
        return model, hist, stop

    a, ha, sa = run("cpu")
    b, hb, sb = run("cuda")
    assert b.dtype == np.float64 and b.predict(x).dtype == np.float64
    _same_params(a, b, rtol=1e-10, atol=1e-12)
    assert sa.best_epoch == sb.best_epoch
    np.testing.assert_allclose(hb["val_loss"], ha["val_loss"], rtol=1e-10)


def test_data_moved_per_batch_when_it_does_not_fit(monkeypatch):
    x, y = _table()
    a, b = _dense_model(), _dense_model()
    nn.fit(a, x, y, epochs=2, batch_size=5, seed=6, device="cuda")
    monkeypatch.setattr(_data, "_fits_on_device", lambda nbytes: False)
    nn.fit(b, x, y, epochs=2, batch_size=5, seed=6, device="cuda")
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(nn.to_host(q.data), nn.to_host(p.data))


def test_augmented_batches_on_cuda_match_cpu():
    x, y = _images(10)
    a, b = _conv_model(), _conv_model()
    kw = dict(epochs=1, batch_size=5, seed=7, augment=[nn.RandomShift(1), nn.RandomFlip()])
    nn.fit(a, x, y, **kw)
    nn.fit(b, x, y, device="cuda", **kw)
    _same_params(a, b)


def test_to_moves_parameters_buffers_and_optimizer_state():
    x, y = _images(6)
    model = _conv_model()
    opt = nn.Adam(model.build(x.shape[1:]), lr=0.01)
    before = model.flat.data.copy()
    model.to("cuda")
    assert model.flat.device == "cuda" and model[1].device == "cuda"
    assert type(model[0].weight.data) is not np.ndarray
    assert not isinstance(model[1].running_mean, np.ndarray)
    xd = cuda.to_device(x)
    model.zero_grad()
    out = model.forward(xd, training=True)
    loss, dout = nn.CrossEntropyLoss()(out, cuda.to_device(y))
    model.backward(dout)
    opt.step()  # its state follows the parameters to the device
    assert not isinstance(opt.state["exp_avg"], np.ndarray)
    state = opt.state_dict()
    assert isinstance(state["exp_avg"], np.ndarray)
    model.to("cpu")
    assert isinstance(model.flat.data, np.ndarray) and isinstance(model[1].running_var, np.ndarray)
    assert np.shares_memory(model.flat.data, model[0].weight.data)
    assert not np.array_equal(model.flat.data, before)
    opt.step()
    assert isinstance(opt.state["exp_avg"], np.ndarray)
    opt.load_state_dict(state)
    np.testing.assert_array_equal(opt.state["exp_avg"], state["exp_avg"])


def test_device_mismatch_is_a_clear_error():
    x, _ = _table(4)
    model = _dense_model()
    model.build(x.shape[1:])
    model.to("cuda")
    with pytest.raises(ValueError, match="parameters are on 'cuda'.*NumPy"):
        model.forward(x)
    layer = nn.Dense(2, in_features=4)
    with pytest.raises(ValueError, match="Dense has its parameters on 'cpu'"):
        layer.forward(cuda.to_device(x))
    with pytest.raises(ValueError, match="_HostOnly runs on the CPU only"):
        nn.Sequential(_HostOnly(), nn.Dense(2)).to("cuda")


class _HostOnly(nn.Layer):
    """A layer that declares it cannot run on the GPU."""

    supports_cuda = False

    def _forward(self, x, training):
        return x

    def _backward(self, dy):
        return dy


def test_unbuilt_models_build_then_move():
    x, _ = _table(5)
    xd = cuda.to_device(x)
    ref = _dense_model()
    seq = _dense_model().to("cuda")
    assert not seq.built
    out = seq.forward(xd)
    assert seq.built and seq.flat.device == "cuda"
    np.testing.assert_allclose(nn.to_host(out), ref.forward(x), **F32)
    layer = nn.Dense(2, seed=0)
    layer.forward(xd)  # a CUDA input builds the layer on the device
    assert layer.device == "cuda" and type(layer.weight.data) is not np.ndarray
    # predict takes NumPy or CUDA input and returns NumPy
    np.testing.assert_allclose(seq.predict(xd, batch_size=2), seq.predict(x), rtol=1e-6)


def test_evaluate_on_cuda_matches_cpu():
    x, y = _table()
    a = _dense_model()
    a.build(x.shape[1:])
    b = pickle.loads(pickle.dumps(a)).to("cuda")
    ra = nn.evaluate(a, x, y, batch_size=4)
    rb = nn.evaluate(b, x, y, batch_size=4)
    assert ra.keys() == rb.keys()
    np.testing.assert_allclose(rb["loss"], ra["loss"], rtol=1e-5)
    assert rb["accuracy"] == ra["accuracy"]


def test_cuda_model_pickles_and_saves_to_host(tmp_path):
    x, y = _images(8)
    model = _conv_model()
    nn.fit(model, x, y, epochs=1, batch_size=4, seed=8, device="cuda")
    expected = model.predict(x)
    host = pickle.loads(pickle.dumps(model))
    assert host.device == "cpu" and all(layer.device == "cpu" for layer in host.layers)
    assert isinstance(host.flat.data, np.ndarray)
    assert isinstance(host[1].running_mean, np.ndarray)
    assert all(np.shares_memory(host.flat.data, p.data) for p in host.parameters())
    np.testing.assert_allclose(host.predict(x), expected, rtol=1e-5, atol=1e-6)
    # the unpickled model keeps training through its shared flat buffer
    before = host[0].weight.data.copy()
    nn.fit(host, x, y, epochs=1, batch_size=4, seed=9)
    assert not np.array_equal(host[0].weight.data, before)
    path = tmp_path / "m.npz"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_device_auto_never_picks_the_simulator():
    from cuda_helpers import SIMULATOR
    if not SIMULATOR:
        pytest.skip("simulator behaviour")
    x, y = _table(6)
    model = _dense_model()
    nn.fit(model, x, y, epochs=1, device="auto")
    assert model.device == "cpu"


# -- one read from the device per epoch -------------------------------------------------------

class _BatchLosses(nn.Callback):
    """A per-batch consumer: its on_batch_end makes fit read each batch's loss."""

    def __init__(self):
        self.losses = []

    def on_batch_end(self, batch, logs=None):
        self.losses.append(logs["loss"])


@pytest.fixture
def reads(monkeypatch):
    """Counts copies from the device to the host (every read goes through copy_to_host)."""
    counter = {"n": 0}
    cls = type(cuda.device_array(1))
    original = cls.copy_to_host

    def counted(self, *args, **kwargs):
        counter["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "copy_to_host", counted)
    return counter


@pytest.mark.parametrize("batch_size,weighted", [(4, False), (2, False), (4, True)])
def test_fit_reads_the_device_once_per_epoch(reads, batch_size, weighted):
    x, y = _table(n=12)
    vx, vy = _table(n=6, seed=1)
    w = np.linspace(0.5, 2.0, 12) if weighted else None
    model = _dense_model()
    model.build(x.shape[1:])
    model.to("cuda")
    reads["n"] = 0
    h = nn.fit(model, x, y, epochs=3, batch_size=batch_size, seed=0, alpha=1e-3,
               validation_data=(vx, vy), sample_weight=w)
    # per epoch: the training sums, then the validation sums; not one per batch (3 or 6 here)
    assert reads["n"] == 2 * 3
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}


def test_a_per_batch_consumer_gets_every_batch_loss(reads):
    x, y = _table(n=12)
    model = _dense_model()
    cb = _BatchLosses()
    reads["n"] = 0
    nn.fit(model, x, y, epochs=2, batch_size=4, seed=0, callbacks=[cb], device="cuda")
    assert len(cb.losses) == 6 and all(isinstance(v, float) for v in cb.losses)
    assert reads["n"] >= 6


@pytest.mark.parametrize("loss,target", [
    ("cross_entropy", "labels"), ("binary_cross_entropy", "binary"), ("mse", "real")])
def test_device_sums_match_per_batch_numbers(loss, target):
    """The same fit with and without a per-batch consumer: the same parameters bit for bit
    (the training steps are identical) and the same logged numbers."""
    x, labels = _table(n=14)
    rng = np.random.default_rng(3)
    y = {"labels": labels, "binary": (rng.random((14, 3)) > 0.5).astype(np.float32),
         "real": rng.standard_normal((14, 3)).astype(np.float32)}[target]
    kw = dict(loss=loss, epochs=2, batch_size=4, seed=2, alpha=1e-2, device="cuda",
              validation_split=0.25, metrics=None if loss != "mse" else ())
    a, b = _dense_model(), _dense_model()
    ha = nn.fit(a, x, y, **kw)
    hb = nn.fit(b, x, y, callbacks=[_BatchLosses()], **kw)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(nn.to_host(p.data), nn.to_host(q.data), err_msg=p.name)
    _same_history(hb, ha)


def test_labels_out_of_range_fail_before_training_on_cuda():
    x, y = _table(n=8)
    y[3] = 7
    model = _dense_model()
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\), got values in \[0, 7\]"):
        nn.fit(model, x, y, epochs=1, device="cuda")


def test_divergence_on_cuda_restores_the_epoch_start():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((32, 4)) * 1e3).astype(np.float32)
    y = (x.sum(1, keepdims=True) * 1e3).astype(np.float32)
    model = nn.Sequential(nn.Dense(8), nn.ReLU(), nn.Dense(1), seed=0)
    model.build((4,))
    model.to("cuda")
    before = nn.to_host(model.flat.data).copy()
    with pytest.raises(nn.DivergenceError, match="at epoch 1; the model is back"):
        nn.fit(model, x, y, loss="mse", optimizer="sgd", lr=1e6, epochs=5, batch_size=16)
    np.testing.assert_array_equal(nn.to_host(model.flat.data), before)


def test_loss_kernels_add_to_a_device_total(rng):
    from fastnn import kernels
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 5)
    ref, ref_grad = kernels.softmax_cross_entropy(logits, labels)
    d_logits, d_labels = cuda.to_device(logits), cuda.to_device(labels)
    total = cuda.to_device(np.array([1.5]))
    loss, grad = kernels.softmax_cross_entropy(d_logits, d_labels, total=total, factor=2.0)
    assert loss is None
    np.testing.assert_allclose(grad.copy_to_host(), ref_grad, **F32)
    np.testing.assert_allclose(total.copy_to_host()[0], 1.5 + 2.0 * float(ref), rtol=1e-6)
    # device labels left unchecked on request: one out of range makes the loss NaN, no stray read
    bad = cuda.to_device(np.array([0, 1, 9, 2, 3]))
    total = cuda.to_device(np.zeros(1))
    kernels.softmax_cross_entropy(d_logits, bad, total=total, check_target=False)
    assert np.isnan(total.copy_to_host()[0])
    with pytest.raises(ValueError, match="class indices"):
        kernels.softmax_cross_entropy(d_logits, bad, total=total)
    with pytest.raises(ValueError, match="total must be a CUDA float64 array of shape"):
        kernels.mse_loss(d_logits, d_logits, total=np.zeros(1))
    with pytest.raises(ValueError, match="total must be a CUDA float64 array of shape"):
        kernels.mse_loss(d_logits, d_logits, total=cuda.to_device(np.zeros(1, np.float32)))


def test_evaluate_reads_the_device_once(reads):
    x, y = _table(n=12)
    model = _dense_model()
    model.build(x.shape[1:])
    model.to("cuda")
    ref = nn.evaluate(pickle.loads(pickle.dumps(model)).to("cpu"), x, y, batch_size=4)
    reads["n"] = 0
    got = nn.evaluate(model, x, y, batch_size=4)
    assert reads["n"] == 1
    np.testing.assert_allclose(got["loss"], ref["loss"], rtol=1e-5)
    assert got["accuracy"] == ref["accuracy"]
    y[0] = 5
    with pytest.raises(ValueError, match="class indices"):
        nn.evaluate(model, x, y, batch_size=4)

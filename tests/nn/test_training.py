"""The training loop: history, reproducibility, callbacks, schedules, augmentation, evaluation."""
import io

import numpy as np
import pytest

import fastnn
from fastnn.nn import losses, optimizers, schedules
from fastnn.nn import Sequential
from fastnn.nn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, ReLU
from fastnn.nn import ModelCheckpoint
from fastnn.nn.training import (Callback, EarlyStopping, RandomFlip, RandomShift, evaluate, fit,
                                predict)


def blobs(n=240, d=8, k=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 2
    y = rng.integers(0, k, n)
    x = centers[y] + rng.standard_normal((n, d))
    return x.astype(dtype), y


def mlp(seed=None, dropout=0.0, bn=False):
    layers = [Dense(16)]
    if bn:
        layers.append(BatchNorm())
    layers += [ReLU()]
    if dropout:
        layers.append(Dropout(dropout))
    layers.append(Dense(3))
    return Sequential(*layers, seed=seed)


class WeightLog(Callback):
    """Copies the flat weights after every epoch."""

    def __init__(self):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.trainer.optimizer.flat.data.copy())


def test_fit_learns_and_records_history():
    x, y = blobs()
    model = mlp()
    h = fit(model, x, y, epochs=8, batch_size=32, lr=1e-2, seed=0, validation_split=0.25)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert len(h) == 8 and h.epoch == list(range(8))
    assert all(len(v) == 8 for v in h.history.values())
    assert h["loss"][-1] < h["loss"][0] / 2
    assert h["val_accuracy"][-1] > 0.9
    assert h["lr"] == [1e-2] * 8
    assert all(t > 0 for t in h["time"])
    res = evaluate(model, x, y)
    assert set(res) == {"loss", "accuracy"} and res["accuracy"] > 0.9
    out = predict(model, x, batch_size=50)
    assert out.shape == (len(x), 3) and out.dtype == np.float32
    assert model.flat.data.dtype == np.float32


def test_float64_stays_float64():
    x, y = blobs(dtype=np.float64)
    model = mlp(seed=0)
    fit(model, x, y, epochs=1, seed=0)
    assert model.dtype == np.float64 and predict(model, x).dtype == np.float64


def train_once(seed, model_seed=None):
    x, y = blobs(n=120, seed=1)
    model = mlp(seed=model_seed, dropout=0.3)
    fit(model, x, y, epochs=3, batch_size=16, optimizer="adam", lr=5e-3, seed=seed,
        validation_split=0.2, alpha=1e-3, clip_norm=5.0)
    return model.flat.data.copy()


def test_same_seed_gives_bitwise_identical_weights():
    a, b = train_once(7), train_once(7)
    np.testing.assert_array_equal(a, b)
    c = train_once(8)
    assert not np.array_equal(a, c)
    # a model seed of its own fixes the initial weights; fit's seed the rest
    d, e = train_once(3, model_seed=11), train_once(3, model_seed=11)
    np.testing.assert_array_equal(d, e)


def test_reproducible_with_augmentation_on_images():
    rng = np.random.default_rng(0)
    x = rng.random((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 2, 40)

    def run():
        model = Sequential(Conv2D(4, 3), ReLU(), Flatten(), Dense(2))
        fit(model, x, y, epochs=2, batch_size=8, seed=5,
            augment=[RandomShift(1), RandomFlip()])
        return model.flat.data.copy()

    np.testing.assert_array_equal(run(), run())


def test_early_stopping_restores_best_weights():
    x, y = blobs(n=200, seed=2)
    xv, yv = blobs(n=60, seed=3)
    log = WeightLog()
    stop = EarlyStopping(monitor="val_loss", patience=2)
    # a large learning rate makes the validation loss bounce, so the best epoch is not the last
    h = fit(mlp(seed=0, bn=True), x, y, epochs=40, lr=0.3, optimizer="sgd",
            optimizer_options={"momentum": 0.9}, batch_size=16, seed=0,
            validation_data=(xv, yv), callbacks=[log, stop])
    val = h["val_loss"]
    best = int(np.argmin(val))
    assert stop.best_epoch == best
    assert stop.stopped_epoch == len(val) - 1 == best + 2
    assert h.stopped_epoch == stop.stopped_epoch
    np.testing.assert_array_equal(stop.trainer.optimizer.flat.data, log.weights[best])
    # restored together with the BatchNorm running statistics: the validation loss is the best
    assert evaluate(stop.trainer.model, xv, yv)["loss"] == pytest.approx(val[best], rel=1e-6)


def test_early_stopping_needs_validation_for_val_monitor():
    x, y = blobs(n=40)
    with pytest.raises(ValueError, match="validation"):
        fit(mlp(), x, y, epochs=1, callbacks=[EarlyStopping()])
    h = fit(mlp(seed=0), x, y, epochs=30, lr=0.0, optimizer="sgd", shuffle=False,
            callbacks=[EarlyStopping(monitor="loss", patience=3)])
    assert len(h) == 4  # nothing improves after the first epoch


def test_model_checkpoint_saves_best(tmp_path):
    x, y = blobs(n=200, seed=2)
    xv, yv = blobs(n=60, seed=3)
    path = tmp_path / "best.npz"
    log = WeightLog()
    ckpt = ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    model = mlp(seed=1)
    h = fit(model, x, y, epochs=8, lr=0.3, optimizer="sgd", batch_size=16, seed=0,
            validation_data=(xv, yv), callbacks=[log, ckpt])
    best = int(np.argmin(h["val_loss"]))
    assert ckpt.saved[-1][0] == best
    loaded = fastnn.load(path)
    np.testing.assert_array_equal(loaded.flat.data, log.weights[best])
    assert evaluate(loaded, xv, yv)["loss"] == pytest.approx(h["val_loss"][best], rel=1e-6)
    every = ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.npz"), save_best_only=False,
                            save_optimizer=True)
    fit(model, x, y, epochs=2, callbacks=[every])
    assert [p for _, p in every.saved] == [str(tmp_path / "m-01.npz"), str(tmp_path / "m-02.npz")]
    m2, opt2 = fastnn.load(tmp_path / "m-02.npz", return_optimizer=True)
    assert isinstance(opt2, optimizers.Adam) and opt2.t == 2 * 7
    np.testing.assert_array_equal(m2.flat.data, model.flat.data)


def test_schedules_drive_lr():
    x, y = blobs(n=64)
    h = fit(mlp(seed=0), x, y, epochs=6, lr=0.1, optimizer="sgd",
            schedule=("step", {"step_size": 2, "gamma": 0.5}))
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    h = fit(mlp(seed=0), x, y, epochs=4, lr=0.1, optimizer="sgd", schedule=lambda e: 0.1 / (e + 1))
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.1 / 3, 0.025])
    plateau = schedules.ReduceOnPlateau(factor=0.5, patience=0, monitor="loss")
    h = fit(mlp(seed=0), x, y, epochs=5, lr=0.0, optimizer="sgd", schedule=plateau)
    # with lr 0 the loss never improves after the first epoch: halved at every later epoch
    assert h["lr"] == [0.0] * 5
    opt_model = mlp(seed=0)
    opt_model.build((8,))
    opt = optimizers.SGD(opt_model, lr=0.2)
    h = fit(opt_model, x, y, epochs=4, optimizer=opt,
            schedule=schedules.ReduceOnPlateau(factor=0.5, patience=0, monitor="accuracy",
                                               mode="max"))
    assert h["lr"][0] == 0.2 and all(a >= b for a, b in zip(h["lr"], h["lr"][1:]))


def test_alpha_adds_sklearn_penalty_to_loss():
    x, y = blobs(n=50)
    model = mlp(seed=0)
    model.build((8,))
    w0 = model.flat.data.copy()
    out = model.forward(x)
    ce, _ = losses.CrossEntropyLoss()(out, y)
    decay = model.flat.decay_mask
    penalty = 0.5 * 0.1 * float((w0[decay].astype(np.float64) ** 2).sum()) / 50
    h = fit(model, x, y, epochs=1, batch_size=50, lr=0.0, optimizer="sgd", alpha=0.1,
            shuffle=False)
    assert h["loss"][0] == pytest.approx(ce + penalty, rel=1e-5)
    np.testing.assert_array_equal(model.flat.data, w0)


def test_clip_norm_bounds_the_update():
    x, y = blobs(n=64)
    model = mlp(seed=0)
    model.build((8,))
    w0 = model.flat.data.astype(np.float64)
    fit(model, x * 100, y, epochs=1, batch_size=64, lr=1.0, optimizer="sgd", clip_norm=0.01)
    assert np.linalg.norm(model.flat.data - w0) <= 0.01 * (1 + 1e-4)


def test_zero_sample_weights_equal_dropping_samples():
    x, y = blobs(n=60)
    keep = np.arange(60) % 3 != 0
    w = keep.astype(float)
    a, b = mlp(seed=4), mlp(seed=4)
    fit(a, x, y, epochs=3, batch_size=60, optimizer="sgd", lr=0.1, shuffle=False, sample_weight=w)
    fit(b, x[keep], y[keep], epochs=3, batch_size=60, optimizer="sgd", lr=0.1, shuffle=False)
    np.testing.assert_allclose(a.flat.data, b.flat.data, rtol=1e-5, atol=1e-6)


def test_warm_start_with_optimizer_object():
    x, y = blobs(n=48)
    a = mlp(seed=2)
    fit(a, x, y, epochs=4, shuffle=False, lr=1e-2)
    b = mlp(seed=2)
    b.build((8,))
    opt = optimizers.Adam(b, lr=1e-2)
    fit(b, x, y, epochs=2, shuffle=False, optimizer=opt)
    fit(b, x, y, epochs=2, shuffle=False, optimizer=opt)
    np.testing.assert_array_equal(a.flat.data, b.flat.data)
    with pytest.raises(ValueError, match="does not hold"):
        fit(mlp(seed=2), x, y, epochs=1, optimizer=opt)


def test_regression_and_multilabel():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    t = x @ rng.standard_normal((4, 1))
    model = Sequential(Dense(16), ReLU(), Dense(1), seed=0)
    h = fit(model, x, t[:, 0], loss="mse", epochs=20, lr=1e-2, metrics=["mae"], seed=0)
    assert set(h.history) == {"loss", "mae", "lr", "time"}
    assert h["loss"][-1] < 0.2 * h["loss"][0]
    labels = (x[:, :3] > 0).astype(np.float32)
    model = Sequential(Dense(16), ReLU(), Dense(3), seed=0)
    h = fit(model, x, labels, loss="binary_cross_entropy", epochs=20, lr=1e-2, seed=0)
    assert h["accuracy"][-1] > 0.9


@pytest.mark.parametrize("verbose", [1, 2, "auto"])
def test_verbose_output_off_a_terminal_is_one_line_per_epoch(capsys, verbose):
    # Keras' semantics; stdout captured is not a terminal: no redraws in a log
    x, y = blobs(n=40)
    fit(mlp(seed=0), x, y, epochs=2, verbose=verbose, validation_split=0.2)
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert len(out) == 2 and out[0].startswith("Epoch 1/2") and out[1].startswith("Epoch 2/2")
    assert "val_loss" in out[0] and "accuracy" in out[0] and "\r" not in captured.out
    assert captured.err == ""


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_verbose_1_on_a_terminal_redraws_one_line_with_rate_eta_and_metrics(monkeypatch):
    from fastnn.nn import progress
    term = _Terminal()
    monkeypatch.setattr(progress.sys, "stdout", term)
    monkeypatch.setattr(progress.Progress, "REDRAW_SECONDS", 0.0)  # draw after every batch
    x, y = blobs(n=40)
    fit(mlp(seed=0), x, y, epochs=2, batch_size=10, verbose=1, validation_split=0.25)
    text = term.getvalue()
    lines = text.split("\n")
    assert len(lines) == 3 and lines[2] == ""  # one finished line per epoch
    first = lines[0].split("\r")[1:]           # the redraws of epoch 1
    assert len(first) == 3 + 1                  # 3 batches, then the epoch's logs
    assert first[0].startswith("Epoch 1/2 1/3 [") and "samples/s" in first[0]
    assert "ETA" in first[0] and "loss:" in first[0] and "accuracy:" in first[0]
    assert first[-1].startswith("Epoch 1/2 - loss:") and "val_loss" in first[-1]


def test_verbose_0_prints_nothing(capsys):
    x, y = blobs(n=40)
    fit(mlp(seed=0), x, y, epochs=2, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_history_to_frame_and_plot():
    pd = pytest.importorskip("pandas")
    x, y = blobs(n=40)
    h = fit(mlp(seed=0), x, y, epochs=3, validation_split=0.25)
    frame = h.to_frame()
    assert isinstance(frame, pd.DataFrame) and list(frame.index) == [1, 2, 3]
    assert frame.index.name == "epoch"
    np.testing.assert_array_equal(frame["val_loss"].to_numpy(), h["val_loss"])
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    axes = h.plot()
    assert [a.get_title() for a in axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in axes[0].get_lines()] == ["training", "validation"]
    with pytest.raises(KeyError, match="mae"):
        h.plot("mae")


def test_random_shift_and_flip():
    rng = np.random.default_rng(0)
    x = rng.random((16, 2, 5, 6))
    shifted = RandomShift(2)(x.copy(), np.random.default_rng(1))
    shifts = np.random.default_rng(1).integers(-2, 3, size=(16, 2))
    for i, (dy, dx) in enumerate(shifts):
        ref = np.zeros_like(x[i])
        src = np.roll(np.roll(x[i], dy, axis=1), dx, axis=2)
        h_lo, h_hi = max(dy, 0), 5 + min(dy, 0)
        w_lo, w_hi = max(dx, 0), 6 + min(dx, 0)
        ref[:, h_lo:h_hi, w_lo:w_hi] = src[:, h_lo:h_hi, w_lo:w_hi]
        np.testing.assert_array_equal(shifted[i], ref)
    flipped = RandomFlip(p=1.0)(x.copy(), rng)
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    both = RandomFlip(horizontal=False, vertical=True, p=1.0)(x.copy(), rng)
    np.testing.assert_array_equal(both, x[:, :, ::-1])
    assert RandomFlip(p=0.0)(x.copy(), rng) is not None
    with pytest.raises(ValueError, match="N, C, H, W"):
        RandomShift(1)(np.zeros((2, 3)), rng)


def test_augmentation_does_not_touch_the_data():
    rng = np.random.default_rng(0)
    x = rng.random((24, 1, 6, 6)).astype(np.float32)
    y = rng.integers(0, 2, 24)
    x0 = x.copy()
    model = Sequential(Flatten(), Dense(2), seed=0)
    fit(model, x, y, epochs=1, batch_size=8, shuffle=False, augment=RandomFlip(p=1.0))
    np.testing.assert_array_equal(x, x0)


def test_bad_arguments():
    x, y = blobs(n=20)
    with pytest.raises(ValueError, match="batch_size"):
        fit(mlp(), x, y, batch_size=0)
    with pytest.raises(ValueError, match="validation_split"):
        fit(mlp(), x, y, validation_split=1.0)
    with pytest.raises(ValueError, match="samples"):
        fit(mlp(), x, y[:10])
    with pytest.raises(ValueError, match="unknown optimizer"):
        fit(mlp(), x, y, optimizer="lbfgs")
    with pytest.raises(ValueError, match="unknown metric"):
        fit(mlp(), x, y, metrics=["f1"])
    with pytest.raises(ValueError, match="alpha"):
        fit(mlp(), x, y, alpha=-1)
    with pytest.raises(TypeError, match="augment"):
        fit(mlp(), x, y, augment=3)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_loss_raises():
    x, y = blobs(n=20)
    with pytest.raises(FloatingPointError, match="loss"):
        fit(mlp(seed=0), x * 1e30, y, lr=1.0, optimizer="sgd", epochs=3)


def test_sequential_fit_method_delegates():
    x, y = blobs(n=40)
    model = mlp(seed=0)
    h = model.fit(x, y, epochs=2, seed=0)
    assert len(h["loss"]) == 2


def test_blas_runs_on_one_thread_while_training_and_is_restored_after():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen = []

    class Probe(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(blas_threads())

    x, y = blobs(n=40)
    before = blas_threads()
    fit(mlp(seed=0), x, y, epochs=2, seed=0, callbacks=[Probe()])
    assert seen and all(n == 1 for threads in seen for n in threads)
    assert blas_threads() == before


def test_unpickled_model_keeps_its_flat_buffer_shared():
    import pickle

    import fastnn.nn as nn
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)).astype(np.float32), rng.integers(0, 2, 20)
    model = nn.Sequential(nn.Dense(4), nn.ReLU(), nn.Dense(2), seed=0)
    opt = nn.Adam(model.build((3,)), lr=0.05)
    nn.fit(model, x, y, optimizer=opt, epochs=1, seed=0)
    copy = pickle.loads(pickle.dumps((model, opt)))
    model2, opt2 = copy
    assert opt2.flat is model2.flat
    assert all(np.shares_memory(model2.flat.data, p.data) for p in model2.parameters())
    assert all(np.shares_memory(model2.flat.grad, p.grad) for p in model2.parameters())
    assert model2[1]._cache is None  # forward caches are not pickled
    nn.fit(model, x, y, optimizer=opt, epochs=1, seed=1)
    nn.fit(model2, x, y, optimizer=opt2, epochs=1, seed=1)
    np.testing.assert_array_equal(model2.flat.data, model.flat.data)


def test_predict_batches_by_memory_give_the_same_outputs():
    from fastnn.nn import inference
    x, y = blobs(n=300)
    model = mlp(seed=0)
    fit(model, x, y, epochs=1, seed=0)
    auto = predict(model, x)
    np.testing.assert_allclose(auto, predict(model, x, batch_size=7), rtol=1e-6, atol=1e-6)
    assert inference._widest_activation(model, x[:1]) >= x.shape[1]

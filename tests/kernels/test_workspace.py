"""Output arrays reused across training steps (fastnn.kernels.reuse_buffers)."""
import sys
import threading
import tracemalloc

import numpy as np

import fastnn.kernels as K
import fastnn.nn as nn
from fastnn._kernels.cpu import _workspace


def test_outside_the_context_every_array_is_new():
    a = _workspace.empty((3, 4), np.float32)
    del a
    assert _workspace.empty((3, 4), np.float32).shape == (3, 4)
    assert getattr(_workspace._local, "pool", None) is None


def test_an_array_anyone_holds_is_never_handed_out_again():
    with K.reuse_buffers():
        a = _workspace.empty((5, 6), np.float32)
        b = _workspace.empty((5, 6), np.float32)
        assert a is not b
        view = b.reshape(30)
        ida = id(a)
        del a, b
        c = _workspace.empty((5, 6), np.float32)
        assert id(c) == ida                      # nobody held it: reused
        d = _workspace.empty((5, 6), np.float32)
        assert d is not c and d is not view.base  # the view keeps the other one alive
        assert _workspace.empty((5, 6), np.float64).dtype == np.float64


def test_the_pool_is_bounded_per_shape_and_dropped_at_the_outermost_exit():
    with K.reuse_buffers():
        held = [_workspace.empty((7,), np.float32) for _ in range(10)]
        with K.reuse_buffers():
            pool = _workspace._local.pool
        assert _workspace._local.pool is pool
        assert len(pool.arrays[((7,), np.dtype(np.float32))]) == _workspace.PER_SHAPE
        assert len({id(a) for a in held}) == 10
    assert _workspace._local.pool is None


def test_threads_do_not_share_buffers():
    seen = {}

    def work(name):
        with K.reuse_buffers():
            seen[name] = _workspace._local.pool

    with K.reuse_buffers():
        t = threading.Thread(target=work, args=("other",))
        t.start()
        t.join()
        assert seen["other"] is not _workspace._local.pool


def test_refcount_calibration_matches_this_interpreter():
    probe = [np.empty(0)]
    assert _workspace._free(probe, _workspace._UNHELD) is probe[0]
    held = probe[0]
    assert _workspace._free(probe, _workspace._UNHELD) is None
    assert sys.getrefcount(held) > 2


def _cnn():
    return nn.Sequential(nn.Conv2D(4, 3, padding=1), nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(),
                         nn.Dense(16), nn.ReLU(), nn.Dense(3), seed=0)


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((96, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 96)


def test_training_with_reused_buffers_gives_the_same_weights(monkeypatch):
    x, y = _data()
    reused = _cnn()
    nn.fit(reused, x, y, epochs=3, batch_size=20, seed=1, verbose=0)
    import contextlib
    monkeypatch.setattr(K, "reuse_buffers", contextlib.nullcontext)
    fresh = _cnn()
    nn.fit(fresh, x, y, epochs=3, batch_size=20, seed=1, verbose=0)
    np.testing.assert_array_equal(reused.flat.data, fresh.flat.data)
    np.testing.assert_array_equal(reused.predict(x), fresh.predict(x))


def test_a_steady_training_step_allocates_no_kernel_output(monkeypatch):
    x, y = _data()
    model = _cnn()
    model.forward(x[:1])
    opt = nn.optimizers.Adam(model)
    loss = nn.losses.get("cross_entropy")
    xb, yb = x[:64], y[:64]

    def step():
        opt.zero_grad()
        out = model.forward(xb, training=True)
        _, dout = loss(out, yb)
        model.backward(dout, input_grad=False)
        opt.step()

    made = []

    def counting_empty(shape, dtype):
        made.append(shape)
        return np.empty(shape, dtype)

    monkeypatch.setattr(_workspace, "_new", counting_empty)
    with K.reuse_buffers():
        step()
        assert len(made) > 5  # every layer's outputs and gradients come from the pool
        step()  # arrays the layers still cache from the first step are not free yet
        warm = len(made)
        for _ in range(3):
            step()
        assert len(made) == warm, made[warm:]  # the steady state allocates nothing new
        tracemalloc.start()
        try:
            step()
            _, peak_reused = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    tracemalloc.start()
    try:
        step()
        _, peak_fresh = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_reused < peak_fresh / 2, (peak_reused, peak_fresh)

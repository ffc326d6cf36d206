"""Graph models: Residual, Branches and Columns containers (forward against NumPy, gradient
checks with shared inputs and merges, one flat buffer, build errors, summary, save/load, fit,
the NeuralNet estimators' nested parameters)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import (BatchNorm, Branches, Columns, Conv1D, Conv2D, Dense, Flatten, ReLU,
                       Residual, Sequential, Tanh)
from tests.gradients import numerical_gradient


def _affine(layer, x):
    """A built Dense layer applied with NumPy: ``x @ weight.T + bias``."""
    w, b = (np.asarray(p.data, dtype=np.float64) for p in layer.parameters())
    return x @ w.T + b


def test_residual_identity_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 6))
    inner1, inner2 = Dense(6), Dense(6)
    model = Sequential(Residual(inner1, Tanh(), inner2), seed=0)
    y = model.forward(x)
    ref = x + _affine(inner2, np.tanh(_affine(inner1, x)))
    np.testing.assert_allclose(y, ref, rtol=1e-12)
    assert y.dtype == np.float64


def test_branches_add_and_concat_match_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    a, b = Dense(5), Dense(5)
    added = Sequential(Branches(a, [b, Tanh()], merge="add"), seed=0).forward(x)
    np.testing.assert_allclose(added, _affine(a, x) + np.tanh(_affine(b, x)), rtol=1e-12)
    c, d = Dense(2), Dense(3)
    joined = Sequential(Branches(c, d, merge="concat"), seed=0).forward(x)
    np.testing.assert_allclose(joined, np.concatenate([_affine(c, x), _affine(d, x)], axis=1),
                               rtol=1e-12)


def test_columns_route_column_blocks_to_their_branch():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 5))
    a, b = Dense(2), Dense(4)
    model = Sequential(Columns([(0, 3), slice(3, 5)], a, b), seed=0)
    y = model.forward(x)
    np.testing.assert_allclose(y, np.concatenate([_affine(a, x[:, :3]), _affine(b, x[:, 3:])],
                                                 axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="overlap"):
        Columns([(0, 3), (2, 5)], Dense(2), Dense(2))
    with pytest.raises(ValueError, match="one branch per column group"):
        Columns([(0, 3)], Dense(2), Dense(2))


def _graph_models():
    return {
        "residual": lambda: Sequential(Dense(4), Residual(Dense(4), Tanh(), Dense(4)), Dense(3),
                                       seed=1),
        "projection": lambda: Sequential(Residual(Dense(5), Tanh(), shortcut=Dense(5)), Dense(2),
                                         seed=2),
        "shared-input-merges": lambda: Sequential(
            Branches([Dense(4), Tanh()], Residual(Dense(4), Tanh(), shortcut=Dense(4)),
                     Dense(4), merge="add"),
            Branches(Dense(2), [Dense(3), Tanh()], merge="concat"), Dense(2), seed=3),
        "columns": lambda: Sequential(Columns([(0, 2), (2, 3)], [Dense(3), Tanh()], Dense(2)),
                                      Dense(2), seed=4),
        "nested": lambda: Sequential(Residual(Branches(Dense(3), [Dense(3), Tanh()], merge="add"),
                                              Residual(Dense(3), Tanh())), Dense(1), seed=5),
    }


@pytest.mark.parametrize("name", sorted(_graph_models()))
def test_graph_gradients_match_central_differences(name):
    """Input and parameter gradients of graphs with shared inputs, merges and projections."""
    model = _graph_models()[name]()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 3))
    model.build((3,), dtype=np.float64)
    dy = rng.standard_normal(model.forward(x).shape)

    def loss_x(v):
        return np.sum(model.forward(v) * dy)

    model.zero_grad()
    model.forward(x, training=True)
    dx = model.backward(dy)
    np.testing.assert_allclose(dx, numerical_gradient(loss_x, x), rtol=1e-5, atol=1e-8)
    flat = model.flat
    analytic = np.array(flat.grad, dtype=np.float64)

    def loss_p(v):
        flat.data[:] = v
        return np.sum(model.forward(x) * dy)

    start = np.array(flat.data, dtype=np.float64)
    numeric = numerical_gradient(loss_p, start)
    flat.data[:] = start
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_every_parameter_lives_in_one_flat_buffer_and_trains():
    model = _graph_models()["shared-input-merges"]()
    x = np.random.default_rng(4).standard_normal((64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model.build((3,))
    params = model.parameters()
    assert model.flat.size == sum(p.size for p in params)
    assert all(np.shares_memory(p.data, model.flat.data) for p in params)
    before = [np.array(p.data) for p in params]
    history = nn.fit(model, x, y, epochs=3, batch_size=16, seed=0)
    assert all(not np.array_equal(b, p.data) for b, p in zip(before, params))
    assert history["loss"][-1] < history["loss"][0]


def test_fit_is_reproducible_with_a_seed():
    x = np.random.default_rng(5).standard_normal((50, 3)).astype(np.float32)
    y = (x.sum(axis=1) > 0).astype(np.int64)
    runs = []
    for _ in range(2):
        model = _graph_models()["nested"]()
        model.layers[-1] = Dense(2)
        nn.fit(model, x, y, epochs=2, batch_size=8, seed=3)
        runs.append(np.array(model.flat.data))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_residual_cnn_infers_shapes_and_names_the_missing_projection():
    x = np.zeros((2, 3, 8, 8), np.float32)
    ok = Sequential(Conv2D(8, 3, padding=1), ReLU(),
                    Residual(Conv2D(16, 3, stride=2, padding=1), BatchNorm(), ReLU(),
                             Conv2D(16, 3, padding=1), shortcut=Conv2D(16, 1, stride=2)),
                    Flatten(), Dense(4), seed=0)
    assert ok.forward(x).shape == (2, 4)
    bad = Sequential(Conv2D(8, 3, padding=1), Residual(Conv2D(16, 3, padding=1)), seed=0)
    with pytest.raises(ValueError, match=r"layer 1 \(Residual\).*projection shortcut"):
        bad.forward(x)
    mismatched = Sequential(Branches(Dense(3), Dense(4), merge="add"), seed=0)
    with pytest.raises(ValueError, match="merge='concat'"):
        mismatched.forward(np.zeros((2, 5), np.float32))


def test_build_errors_name_the_layer_inside_the_container():
    model = Sequential(Residual(Dense(4), Conv1D(2, 3)), seed=0)
    with pytest.raises(ValueError, match=r"Residual, layer 1 \(Conv1D\)"):
        model.forward(np.zeros((2, 4), np.float32))


def test_summary_lists_layers_shapes_and_parameters():
    model = Sequential(Conv1D(4, 3, padding=1), Residual(Conv1D(4, 3, padding=1), ReLU()),
                       Branches(Conv1D(2, 1), Conv1D(3, 1)), Flatten(), Dense(2), seed=0)
    text = model.summary((1, 10))
    assert "Residual" in text and "Branches" in text and "branch 1" in text
    assert "(5, 10)" in text and "(2,)" in text
    assert f"total parameters: {sum(p.size for p in model.parameters()):,}" in text
    with pytest.raises(ValueError, match="input_shape"):
        nn.summary(Sequential(Dense(2)))


@pytest.mark.parametrize("name", sorted(_graph_models()))
def test_save_and_load_round_trip(tmp_path, name):
    model = _graph_models()[name]()
    x = np.random.default_rng(6).standard_normal((5, 3)).astype(np.float32)
    out = model.forward(x)
    path = tmp_path / "graph.fastnn"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    np.testing.assert_array_equal(loaded.forward(x), out)
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(model.clone().build((3,)).forward(x).shape, out.shape)


def test_loader_rejects_a_bad_graph_description(tmp_path):
    model = Sequential(Columns([(0, 2), (2, 3)], Dense(2), Dense(2)), seed=0)
    model.build((3,))
    from fastnn.nn import _state
    config, arrays = _state.model_state(model)
    bad = {**config, "model": {**config["model"]}}
    spec = bad["model"]["config"]["layers"][0]["__layer__"]["config"]
    spec["groups"] = [[0, 2], [1, 3]]
    with pytest.raises(ValueError, match="overlap"):
        _state.model_from_state(bad, arrays)
    spec["groups"] = [[0, 2]]
    with pytest.raises(ValueError, match="one branch per column group"):
        _state.model_from_state(bad, arrays)


def test_neuralnet_estimator_trains_a_graph_with_nested_parameters():
    from sklearn.base import clone
    from sklearn.datasets import load_digits
    from fastnn.sklearn import NeuralNetClassifier
    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    clf = NeuralNetClassifier(layers=[Dense(32), ReLU(), Residual(Dense(32), ReLU(), Dense(32)),
                                      ReLU()], max_iter=10, learning_rate_init=0.01,
                              random_state=0)
    params = clf.get_params()
    assert params["layers__2__layers__0__units"] == 32
    clf.set_params(layers__2__layers__0__units=16)
    assert clf.layers[2].layers[0].units == 16
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(layers__2__layers__0__nonsense=1)
    clf.fit(X, y)
    assert clf.score(X, y) > 0.8
    assert clone(clf).get_params()["layers__2__layers__0__units"] == 16


def test_fastnn_testing_gradcheck_walks_into_containers():
    from fastnn.testing import gradcheck
    model = Sequential(Residual(Dense(4), Tanh(), Dense(4), shortcut=Dense(4)),
                       Branches(Dense(2), [Dense(3), Tanh()]), Dense(2), seed=0)
    x = np.random.default_rng(7).standard_normal((3, 4))
    assert gradcheck(model, x)


def test_columns_feed_float_codes_to_embeddings_of_the_models_dtype():
    rng = np.random.default_rng(8)
    num = rng.standard_normal((40, 3))
    codes = rng.integers(0, 5, (40, 1)).astype(np.float64)   # as OrdinalEncoder gives them
    x = np.hstack([num, codes])
    y = (num[:, 0] + (codes[:, 0] > 2) > 0).astype(np.int64)
    model = Sequential(Columns([(0, 3), (3, 4)], Dense(4), [nn.Embedding(5, 2), Flatten()]),
                       Dense(2), seed=0)
    nn.fit(model, x, y, epochs=2, batch_size=8, seed=0)
    assert model.dtype == np.float64
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    emb = model.layers[0].branches[1][0]
    np.testing.assert_array_equal(model.forward(x)[:, :0], np.zeros((40, 0)))
    assert emb.weight.data.shape == (5, 2)
    with pytest.raises(TypeError, match="whole numbers"):
        model.forward(np.hstack([num, codes + 0.5]))


# -- one layer object used twice: refused when the model builds ---------------------------------

def _shared_models():
    """Models in which one layer object appears twice, and what the error must say of where."""
    d = Dense(2)
    t = Tanh()
    return {
        "sequential": (lambda: Sequential(d, Tanh(), d, seed=0),
                       r"layer 2 \(Dense\) is the same Dense object as layer 0 \(Dense\)"),
        "sequential-activation": (lambda: Sequential(Dense(3), t, Dense(3), t, seed=0),
                                  r"layer 3 \(Tanh\) is the same Tanh object as layer 1"),
        "branches": (lambda: Sequential(Branches(d, d), seed=0),
                     r"layer 0 \(Branches\) > branch 1, layer 0 \(Dense\) is the same Dense "
                     r"object as layer 0 \(Branches\) > branch 0, layer 0 \(Dense\)"),
        "branches-nested-path": (lambda: Sequential(Branches(d, [Tanh(), d]), Dense(2), seed=0),
                                 r"branch 1, layer 1 \(Dense\) is the same Dense object as "
                                 r"layer 0 \(Branches\) > branch 0, layer 0"),
        "residual-shortcut": (lambda: Sequential(Residual(d, shortcut=d), seed=0),
                              r"layer 0 \(Residual\) > shortcut \(Dense\) is the same Dense "
                              r"object as layer 0 \(Residual\) > layer 0 \(Dense\)"),
        "residual-and-stack": (lambda: Sequential(Dense(2), Residual(d, Tanh()), d, seed=0),
                               r"layer 2 \(Dense\) is the same Dense object as layer 1 "
                               r"\(Residual\) > layer 0 \(Dense\)"),
        "columns": (lambda: Sequential(Columns([(0, 1), (1, 3)], d, [Tanh(), d]), seed=0),
                    r"layer 0 \(Columns\) > branch 1 \(columns 1:3\), layer 1 \(Dense\) is the "
                    r"same Dense object as layer 0 \(Columns\) > branch 0 \(columns 0:1\)"),
        "nested-containers": (lambda: Sequential(
            Residual(Branches(Dense(3), [Dense(3), Tanh()], merge="add"), Residual(d)),
            Branches(d, Dense(2)), seed=0),
            r"layer 1 \(Branches\) > branch 0, layer 0 \(Dense\) is the same Dense object as "
            r"layer 0 \(Residual\) > layer 1 \(Residual\) > layer 0 \(Dense\)"),
    }


@pytest.mark.parametrize("name", sorted(_shared_models()))
def test_a_layer_used_twice_is_refused_at_build_naming_both_places(name):
    make, where = _shared_models()[name]
    x = np.zeros((2, 3), np.float32)
    for build in (lambda m: m.build((3,)), lambda m: m.forward(x),
                  lambda m: nn.fit(m, x, np.zeros(2, np.int64), epochs=1)):
        model = make()
        with pytest.raises(ValueError, match=where) as info:
            build(model)
        text = str(info.value)
        assert "not supported" in text and "two separate layers" in text
        assert "layer.clone()" in text
        assert not model.built and model.flat is None   # nothing was packed


def test_a_container_of_its_own_refuses_a_layer_used_twice():
    d = Dense(2)
    for container, where in [(Branches(d, d), "branch 1, layer 0"),
                             (Residual(d, Tanh(), d), "layer 2"),
                             (Columns([(0, 1), (1, 2)], d, d),
                              r"branch 1 \(columns 1:2\), layer 0")]:
        with pytest.raises(ValueError, match=f"{where} \\(Dense\\) is the same Dense object"):
            container.forward(np.zeros((2, 2), np.float32))
        assert not container.built


def test_separate_layers_and_clones_build_with_their_own_slots():
    """The fix the error names: two layers (or a clone) each get their own parameters."""
    d = Dense(2)
    model = Sequential(Branches(d, d.clone(), merge="add"), seed=0)
    model.build((3,))
    a, b = model.layers[0].branches
    assert a[0] is d and b[0] is not d
    assert model.flat.size == 2 * (3 * 2 + 2)
    slots = [p._flat[1] for p in model.parameters()]
    assert len(set(slots)) == len(slots)


# -- evaluate and callbacks on a graph ------------------------------------------------------------

def _graph_data(n=96, seed=9):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5)).astype(np.float32)
    y = ((x[:, 0] - x[:, 3] + 0.5 * x[:, 4] * x[:, 1]) > 0).astype(np.int64)
    return x, y


def _graph_with_state(seed=0):
    """Every container, and a BatchNorm (running statistics) inside a Residual."""
    return Sequential(
        Columns([(0, 3), (3, 5)], [Dense(6), Tanh()], Dense(2)),
        Residual(Dense(8), BatchNorm(), ReLU(), Dense(8)),
        Branches(Dense(4), [Dense(4), Tanh()], merge="concat"),
        Dense(2), seed=seed)


def test_evaluate_a_graph_matches_numpy_and_fit_validation():
    x, y = _graph_data()
    model = _graph_with_state()
    history = nn.fit(model, x[:64], y[:64], epochs=3, batch_size=16, seed=0,
                     validation_data=(x[64:], y[64:]))
    result = nn.evaluate(model, x[64:], y[64:], metrics=["accuracy"])
    logits = np.asarray(model.predict(x[64:]), dtype=np.float64)
    top = logits.max(axis=1, keepdims=True)
    log_p = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(result["loss"], -log_p[np.arange(32), y[64:]].mean(), rtol=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y[64:]))
    np.testing.assert_allclose(result["loss"], history["val_loss"][-1], rtol=1e-6)
    assert result["accuracy"] == pytest.approx(history["val_accuracy"][-1])
    mse = nn.evaluate(Sequential(Residual(Dense(5), Tanh()), Dense(1), seed=0), x,
                      x[:, :1], loss="mse", metrics=["mae"])
    assert set(mse) == {"loss", "mae"} and mse["loss"] > 0


def test_early_stopping_restores_the_best_graph_weights_and_running_statistics():
    x, y = _graph_data()
    model = _graph_with_state()
    norm = model.layers[1].layers[1]
    states = []

    def record(epoch, logs):
        states.append((np.array(model.flat.data), np.array(norm.running_mean),
                       np.array(norm.running_var)))

    # mode="max" on a falling val_loss: the best epoch is an early one, so restoring must act
    stop = nn.EarlyStopping("val_loss", patience=2, mode="max", restore_best_weights=True)
    history = nn.fit(model, x, y, epochs=20, batch_size=16, seed=0, validation_split=0.25,
                     callbacks=[nn.LambdaCallback(record), stop], lr=3e-3)
    assert stop.stopped_epoch is not None and stop.best_epoch < stop.stopped_epoch
    assert len(history.epoch) == stop.stopped_epoch + 1 < 20
    assert history.stopped_epoch == stop.stopped_epoch
    data, mean, var = states[stop.best_epoch]
    assert not np.array_equal(data, states[-1][0])
    np.testing.assert_array_equal(model.flat.data, data)
    np.testing.assert_array_equal(norm.running_mean, mean)
    np.testing.assert_array_equal(norm.running_var, var)


def test_lambda_callback_stops_and_history_records_a_graph_fit():
    x, y = _graph_data()
    model = _graph_with_state()
    seen = []

    def stop_at_two(epoch, logs):
        seen.append(sorted(logs))
        return epoch == 1

    history = nn.fit(model, x, y, epochs=10, batch_size=32, seed=0, validation_split=0.25,
                     callbacks=[stop_at_two])
    assert history.epoch == [0, 1] and len(history["loss"]) == 2
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(seen[0])


def test_model_checkpoint_saves_a_graph_that_loads(tmp_path):
    x, y = _graph_data()
    model = _graph_with_state()
    check = nn.ModelCheckpoint(tmp_path / "best-{epoch}.npz", monitor="val_loss",
                               save_best_only=True, save_optimizer=True)
    nn.fit(model, x, y, epochs=3, batch_size=16, seed=0, validation_split=0.25,
           callbacks=[check])
    assert check.saved
    epoch, path = check.saved[-1]
    loaded, optimizer = fastnn.load(path, return_optimizer=True)
    assert repr(loaded) == repr(model) and optimizer is not None
    if epoch == 2:   # the last epoch was the best: the file holds the model as it is now
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert nn.evaluate(loaded, x, y)["loss"] < 5

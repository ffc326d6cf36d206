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

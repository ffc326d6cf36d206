"""Weight initialisers (``fastnn.nn.init``): variances, bounds, fans, orthogonal, determinism."""
import numpy as np
import pytest

from fastnn.nn import init

FAN_BASED = {
    # name: (kind, variance as a function of (fan_in, fan_out))
    "he_normal": ("normal", lambda i, o: 2.0 / i),
    "he_uniform": ("uniform", lambda i, o: 2.0 / i),
    "glorot_normal": ("normal", lambda i, o: 2.0 / (i + o)),
    "glorot_uniform": ("uniform", lambda i, o: 2.0 / (i + o)),
    "lecun_normal": ("normal", lambda i, o: 1.0 / i),
    "lecun_uniform": ("uniform", lambda i, o: 1.0 / i),
}


@pytest.mark.parametrize("name", sorted(FAN_BASED))
def test_variance_and_bounds(name):
    kind, var = FAN_BASED[name]
    shape = (300, 200)  # fan_in 200, fan_out 300
    w = init.get(name)(shape, np.random.default_rng(0), np.float64)
    want = var(200, 300)
    assert w.shape == shape
    assert abs(w.mean()) < 4 * np.sqrt(want / w.size)
    assert w.var() == pytest.approx(want, rel=0.03)
    if kind == "uniform":
        bound = np.sqrt(3 * want)
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.99 * bound
    else:  # a normal has about 4.6% of its mass beyond 2 std
        frac = np.mean(np.abs(w) > 2 * np.sqrt(want))
        assert 0.035 < frac < 0.055


def test_conv_fans_and_explicit_fans():
    assert init.compute_fans((8, 3)) == (3, 8)
    assert init.compute_fans((16, 4, 3, 3)) == (36, 144)
    assert init.compute_fans((16, 4, 5)) == (20, 80)
    assert init.compute_fans((7,)) == (7, 7)
    assert init.compute_fans(()) == (1, 1)
    w = init.he_uniform((64, 32, 3, 3), 0, np.float64)
    assert np.abs(w).max() <= np.sqrt(6 / (32 * 9))
    w = init.he_uniform((64, 32, 3, 3), 0, np.float64, fan_in=8)
    assert np.abs(w).max() > np.sqrt(6 / (32 * 9))
    assert np.abs(w).max() <= np.sqrt(6 / 8)
    a = init.glorot_uniform((10, 10), 0, np.float64, fan_in=1, fan_out=5)
    assert np.abs(a).max() <= 1.0


@pytest.mark.parametrize("shape", [(6, 6), (3, 7), (7, 3), (4, 2, 3)])
def test_orthogonal(shape):
    w = init.orthogonal(shape, np.random.default_rng(1), np.float64)
    assert w.shape == shape
    m = w.reshape(shape[0], -1)
    if m.shape[0] <= m.shape[1]:
        np.testing.assert_allclose(m @ m.T, np.eye(m.shape[0]), atol=1e-12)
    else:
        np.testing.assert_allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-12)


def test_orthogonal_gain_and_errors():
    w = init.orthogonal((5, 5), 3, np.float64, gain=2.0)
    np.testing.assert_allclose(w @ w.T, 4 * np.eye(5), atol=1e-12)
    with pytest.raises(ValueError, match="2 dimensions"):
        init.orthogonal((5,), 0)
    assert init.orthogonal((0, 4), 0).shape == (0, 4)


@pytest.mark.parametrize("name", sorted(FAN_BASED) + ["orthogonal"])
def test_determinism_and_dtype(name):
    f = init.get(name)
    a = f((20, 10), np.random.default_rng(5))
    b = f((20, 10), np.random.default_rng(5))
    c = f((20, 10), np.random.default_rng(6))
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(f((20, 10), 5), a)  # an int seed works like a generator
    d = f((20, 10), np.random.default_rng(5), np.float64)
    assert d.dtype == np.float64
    np.testing.assert_array_equal(d.astype(np.float32), a)  # same draws in either dtype


def test_zeros_ones():
    z = init.zeros((2, 3))
    o = init.ones(4, dtype=np.float64)
    assert z.dtype == np.float32 and not z.any() and z.shape == (2, 3)
    assert o.dtype == np.float64 and (o == 1).all() and o.shape == (4,)


def test_get():
    assert init.get("he_uniform") is init.he_uniform
    assert init.get("Xavier_Uniform") is init.glorot_uniform
    assert init.get("kaiming_normal") is init.he_normal
    assert init.xavier_normal is init.glorot_normal

    def mine(shape, rng=None, dtype=np.float32, fan_in=None, fan_out=None):
        return np.full(shape, 0.5, dtype)

    assert init.get(mine) is mine
    with pytest.raises(ValueError, match="unknown initializer 'nope'"):
        init.get("nope")
    with pytest.raises(TypeError, match="initializer"):
        init.get(3)


def test_bad_arguments():
    with pytest.raises(TypeError, match="dtype"):
        init.he_normal((3, 3), 0, np.int32)
    with pytest.raises(ValueError, match="fan_in"):
        init.he_normal((3, 0), 0)
    with pytest.raises(ValueError, match="non-negative"):
        init.zeros((-1, 2))
    with pytest.raises(TypeError, match="rng"):
        init.he_normal((3, 3), "seed")

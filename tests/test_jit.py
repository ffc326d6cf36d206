"""``specialise``: a kernel compiles only the code paths of its constants."""
import numpy as np
import pytest
from numba.core import types

from fastnn._kernels.cpu._jit import jit, specialise


@jit
def _pick(x, code):
    if code == 0:
        return x + 1.0
    elif code == 1:
        return np.exp(x)
    return np.tanh(x)


def _body(x):
    return _pick(x, CODE)  # noqa: F821  (bound by specialise)


def _literal_codes(dispatcher):
    return sorted(sig[1].literal_value for sig in dispatcher.signatures
                  if isinstance(sig[1], types.IntegerLiteral))


def test_constants_reach_callees_as_literals():
    k0 = specialise(_body, "body", CODE=0)
    k1 = specialise(_body, "body", CODE=1)
    assert k0 is specialise(_body, "body", CODE=0)  # made once per set of constants
    assert k0 is not k1
    assert k0(1.5) == 2.5
    assert k1(0.0) == 1.0
    assert _literal_codes(_pick) == [0, 1]  # one literal signature per constant, no generic one
    assert all(isinstance(sig[1], types.IntegerLiteral) for sig in _pick.signatures)
    # the branches of other codes fold away: no tanh in code 0's machine code
    ir = _pick.inspect_llvm()
    code0 = [text for sig, text in ir.items() if sig[1].literal_value == 0][0]
    assert "tanh" not in code0 and "exp" not in code0.replace("expect", "")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_an_mlp_fit_compiles_only_its_own_paths():
    from fastnn._kernels.cpu import _jit
    from fastnn._kernels.cpu import mlp as cpu_mlp
    from fastnn.sklearn import MLPRegressor
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal(40)
    MLPRegressor(hidden_layer_sizes=(4,), activation="tanh", solver="sgd", max_iter=2,
                 random_state=0).fit(X, y).predict(X)
    names = [key[1] for key in _jit._specialised if key[0] is cpu_mlp._train_epoch]
    constants = [dict(key[4]) for key in _jit._specialised if key[0] is cpu_mlp._train_epoch]
    assert names and all(n == "train_epoch" for n in names)
    mine = dict(HIDDEN=cpu_mlp.TANH, OUTPUT=cpu_mlp.IDENTITY, LOSS=cpu_mlp.SQUARED,
                SOLVER=cpu_mlp.SGD, SPARSE=False, PARALLEL=False)
    assert mine in constants
    # every activation the kernels compiled was for a literal code: no generic all-branch copy
    assert all(isinstance(sig[1], types.IntegerLiteral)
               for sig in cpu_mlp._apply_activation.signatures)

"""``specialise``: a kernel compiles only the code paths of its constants."""
import os
import subprocess
import sys

import numpy as np
import pytest
from numba.core import types


_SCRIPT = """
import numpy as np
from numba.core import types
from fastnn._kernels.cpu._jit import jit, specialise

@jit
def _pick(x, code):
    if code == 0:
        return x + 1.0
    elif code == 1:
        return np.exp(x)
    return np.tanh(x)

CODE = None  # bound per copy


def _body(x):
    return _pick(x, CODE)

k0 = specialise(_body, "body", CODE=0)
k1 = specialise(_body, "body", CODE=1)
assert k0 is specialise(_body, "body", CODE=0)  # made once per set of constants
assert k0 is not k1
assert k0(1.5) == 2.5 and k1(0.0) == 1.0
sigs = _pick.signatures
# one literal signature per constant, no generic one that compiles every branch
assert sorted(s[1].literal_value for s in sigs if isinstance(s[1], types.IntegerLiteral)) == [0, 1]
assert len(sigs) == 2, sigs
code0 = [text for sig, text in _pick.inspect_llvm().items() if sig[1].literal_value == 0][0]
assert "tanh" not in code0 and "@llvm.exp" not in code0  # the other codes' branches are gone
print("ok")
"""


def test_constants_reach_callees_as_literals(tmp_path):
    # a fresh process and an empty kernel cache: the functions really compile here
    script = tmp_path / "specialise_case.py"
    script.write_text(_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)))
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], proc.stderr[-3000:]


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


def test_compile_log_records_nested_compiles_with_their_own_time():
    import numba

    from fastnn._kernels.compile_log import compile_log

    @numba.njit(cache=False)
    def inner(x):
        return x * 2.0

    @numba.njit(cache=False)
    def outer(x):
        return inner(x) + 1.0

    with compile_log() as log:
        assert outer(1.0) == 3.0
    names = [c.name.rsplit(".", 1)[-1] for c in log]
    assert names == ["inner", "outer"]  # in the order they finished: the callee first
    inner_c, outer_c = log
    assert inner_c.depth == 1 and outer_c.depth == 0
    assert 0 <= outer_c.own_seconds <= outer_c.seconds
    assert outer_c.seconds >= inner_c.seconds
    assert log.total() == outer_c.seconds
    assert "outer" in log.format() and "compiled 2 signatures" in log.format()
    with compile_log() as again:
        outer(2.0)  # compiled already: nothing recorded
    assert len(again) == 0


_LINK_SCRIPT = """
import sys
import numpy as np
from fastnn._kernels.cpu import mlp

# the SGD update is a callee of the epoch kernel; calling it directly first loads its own copy,
# which the process that compiles the kernel has loaded too
if sys.argv[1] == "callee-first":
    p = np.ones(3, np.float32)
    mlp._sgd_update(p, p.copy(), p.copy(), np.float32(0.1), np.float32(0.9), True)
from fastnn._kernels import mlp as kmlp
rng = np.random.default_rng(0)
x = rng.standard_normal((300, 40)).astype(np.float32)
m = kmlp.model([40, 64, 3], 3, 4, 1)
h = kmlp.hyper(1e-4, "sgd", 0.9, True, 0.9, 0.999, 1e-8)
params = (rng.standard_normal(m.size) * 0.1).astype(np.float32)
y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 300)]
data = mlp.epoch_data(x, y, None, np.dtype(np.float32))
ws = mlp.workspace(m, 100, np.float32, "epoch")
order = rng.permutation(300).astype(np.int64)
velocity = np.zeros(m.size, np.float32)
grad = np.empty(m.size, np.float32)
for _ in range(3):
    mlp.train_epoch(data, order, 100, params, grad, m, h, 0.05, 0, (velocity, velocity), ws)
print(params.astype(np.float64).sum().hex(), velocity.astype(np.float64).sum().hex())
"""


def test_a_kernel_computes_the_same_bits_compiled_here_or_loaded_from_the_cache(tmp_path):
    """Callees linked into a kernel are its own (``_linking.private_links``): the process that
    compiles the SGD epoch (its callee's standalone copy loaded) and processes that load it from
    the cache, with or without that standalone copy, compute the same bits."""
    script = tmp_path / "link_case.py"
    script.write_text(_LINK_SCRIPT)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    outs = []
    for order in ("kernel-only", "kernel-only", "callee-first"):  # compile, load, load
        proc = subprocess.run([sys.executable, str(script), order], capture_output=True,
                              text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(proc.stdout.split())
    assert outs[0] == outs[1] == outs[2]


def test_a_bound_name_must_be_declared_in_the_bodys_module():
    """``bind`` refuses a name its body's module does not declare: every name a copy binds can
    be found by reading (or grepping) the module."""
    from fastnn._kernels.cpu import activation
    from fastnn._kernels.cpu._jit import bind
    with pytest.raises(NameError, match="declare them in the module"):
        bind(activation._elementwise, "undeclared_copy", rul=activation._relu)
    assert activation.rule is None  # declared, bound per copy
    bind(activation._elementwise, "declared_copy", rule=activation._relu)

"""The shape of fastnn's code, read from the source: no function takes more parameters than a
reader can hold (12; 20 inside the backend modules, whose kernels take their arrays one by one).

Exempt: the estimators' ``__init__``s and the Keras-style ``fit``, whose parameters mirror
scikit-learn's and Keras' signatures on purpose.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "fastnn"
LIMIT, BACKEND_LIMIT = 12, 20
EXEMPT = {
    ("sklearn/_mlp.py", "MLPClassifier.__init__"), ("sklearn/_mlp.py", "MLPRegressor.__init__"),
    ("sklearn/_neuralnet.py", "NeuralNetClassifier.__init__"),
    ("sklearn/_neuralnet.py", "NeuralNetRegressor.__init__"),
    ("nn/training.py", "fit"),
}


def _functions(tree):
    """(qualified name, node) of every function, methods named ``Class.method``."""
    out = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)
    walk(tree, "")
    return out


def _count(fn):
    a = fn.args
    n = (len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None)
         + (a.kwarg is not None))
    if a.args and a.args[0].arg in ("self", "cls"):
        n -= 1
    return n


def test_no_function_takes_too_many_parameters():
    too_many, exempt_seen = [], set()
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        limit = BACKEND_LIMIT if rel.startswith(("_kernels/cpu/", "_kernels/cuda/")) else LIMIT
        for name, fn in _functions(ast.parse(path.read_text())):
            if (rel, name) in EXEMPT:
                exempt_seen.add((rel, name))
                continue
            n = _count(fn)
            if n > limit:
                too_many.append(f"{rel}:{fn.lineno} {name} takes {n} parameters (limit {limit})")
    assert not too_many, "group the parameters in named structures:\n" + "\n".join(too_many)
    assert exempt_seen == EXEMPT, f"exemptions that no longer exist: {EXEMPT - exempt_seen}"

"""The backend twins line up: a function that ``cpu/X.py`` and ``cuda/X.py`` both define takes
the same parameters (names, order, defaults), so a wrapper calls ``impl.<op>(...)`` without
asking which device it has. Read from the source (no GPU, no compile).

``EXCEPTIONS`` would list a pair whose parameters cannot be the same on both sides, each with
the reason; it is empty: every pair lines up. The test fails when a pair differs, and when a
listed pair has come to match (remove it then).

``ONE_SIDED`` lists each public function that only one backend of a family offers (defined or
imported there), with the reason the other side has no use for it; a new one-sided function
fails the test until it is listed, and a listed one that comes to exist on both sides (or on
neither) fails it too.
"""
import ast
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[2] / "fastnn" / "_kernels"

EXCEPTIONS = {}   # (family, function): why the two cannot take the same parameters

ONE_SIDED = {     # (family, function): (the side that has it, why the other has no use for it)
    ("activation", "relu_inplace"): (
        "cuda", "ReLU applied after a CUDA GEMM (conv, linear); the CPU fuses it into its GEMM"),
    ("activation", "row_threads"): ("cuda", "launch geometry of the row kernels (also loss)"),
    ("arrayops", "add_to"): (
        "cpu", "adds a host scalar to a host total; CUDA totals are added inside the kernels"),
    ("arrayops", "as_device"): ("cuda", "wraps a foreign CUDA array; host arrays need no wrap"),
    ("arrayops", "to_device"): ("cuda", "copies to the GPU; the wrapper moves to the host itself"),
    ("linear", "matmul"): (
        "cpu", "the host product inside cpu_work (BLAS on one thread); CUDA's is cuda/_gemm"),
    ("linear", "column_sum"): (
        "cuda", "bias gradient of the CUDA GEMMs (linear, rnn); the CPU sums inside its kernels"),
    ("mlp", "batch_loss"): (
        "cpu", "scikit-learn's loss of host predictions: the CPU estimator scores its validation "
               "set on the host, as scikit-learn does"),
    ("mlp", "row_blocks"): ("cpu", "how many row blocks a step's threads split a batch into"),
    ("mlp", "read_stats"): (
        "cuda", "the epoch's loss and validation sums stay on the GPU until this one copy"),
    ("mlp", "validation_data"): ("cuda", "the validation set moved to the GPU once per fit"),
    ("mlp", "validation"): (
        "cuda", "validation loss, correct counts and squared errors summed on the GPU, so an "
                "epoch reads back one small vector; the CPU scores host predictions"),
}


def _public(path):
    tree = ast.parse(path.read_text())
    return {n.name: ast.unparse(n.args) for n in tree.body
            if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}


def _names(path):
    """Public functions a backend module offers: defined there, or imported to be re-exported
    (an import marked ``noqa: F401``; other imports are the module's own tools)."""
    text = path.read_text()
    lines = text.splitlines()
    tree = ast.parse(text)
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    names |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
              and "noqa: F401" in lines[n.lineno - 1] for a in n.names}
    return {n for n in names if not n.startswith("_") and n[0].islower()}


def _families():
    for cpu in sorted((KERNELS / "cpu").glob("*.py")):
        cuda = KERNELS / "cuda" / cpu.name
        if not cpu.name.startswith("_") and cuda.exists():
            yield cpu.stem, cpu, cuda


def _differing():
    out = {}
    for cpu in sorted((KERNELS / "cpu").glob("*.py")):
        cuda = KERNELS / "cuda" / cpu.name
        if cpu.name.startswith("_") or not cuda.exists():
            continue
        a, b = _public(cpu), _public(cuda)
        for name in sorted(set(a) & set(b)):
            if a[name] != b[name]:
                out[(cpu.stem, name)] = (a[name], b[name])
    return out


def test_functions_both_backends_define_take_the_same_parameters():
    differing = _differing()
    new = {k: v for k, v in differing.items() if k not in EXCEPTIONS}
    assert not new, "cpu and cuda signatures differ:\n" + "\n".join(
        f"{fam}.{name}: cpu ({a}) / cuda ({b})" for (fam, name), (a, b) in new.items())
    matched = set(EXCEPTIONS) - set(differing)
    assert not matched, f"these pairs match now: remove them from EXCEPTIONS: {sorted(matched)}"


def test_a_function_one_backend_lacks_is_listed_with_its_reason():
    found = {}
    for family, cpu, cuda in _families():
        a, b = _names(cpu), _names(cuda)
        found.update({(family, n): "cpu" for n in a - b})
        found.update({(family, n): "cuda" for n in b - a})
    unlisted = {k: side for k, side in found.items() if k not in ONE_SIDED}
    assert not unlisted, ("only one backend offers these: add them to the other side, or list "
                          f"them in ONE_SIDED with the reason: {sorted(unlisted.items())}")
    wrong = {k: v[0] for k, v in ONE_SIDED.items() if found.get(k) != v[0]}
    assert not wrong, f"these are no longer offered by that side alone: {sorted(wrong)}"

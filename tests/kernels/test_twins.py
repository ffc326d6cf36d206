"""The backend twins line up: a function that ``cpu/X.py`` and ``cuda/X.py`` both define takes
the same parameters (names, order, defaults), so a wrapper calls ``impl.<op>(...)`` without
asking which device it has. Read from the source (no GPU, no compile).

``EXCEPTIONS`` would list a pair whose parameters cannot be the same on both sides, each with
the reason; it is empty: every pair lines up. The test fails when a pair differs, and when a
listed pair has come to match (remove it then).
"""
import ast
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[2] / "fastnn" / "_kernels"

EXCEPTIONS = {}   # (family, function): why the two cannot take the same parameters


def _public(path):
    tree = ast.parse(path.read_text())
    return {n.name: ast.unparse(n.args) for n in tree.body
            if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")}


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

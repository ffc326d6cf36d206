"""The import layering of fastnn, checked on the source (every import, function-level ones too).

- A backend (``fastnn._kernels.cpu`` / ``fastnn._kernels.cuda``) imports its own modules and the
  neutral shared modules only: never the other backend, a wrapper, ``fastnn.kernels``, ``nn``,
  ``io`` or the estimators.
- ``fastnn.nn``, ``fastnn.io`` and ``fastnn.sklearn`` reach kernels through the kernel API
  (``fastnn.kernels`` and the wrapper modules of ``fastnn._kernels``), never a backend module.
- The top floor (the command, the report, the demo, the benchmarks, ``fastnn.testing``, the
  warm-up uses) reaches the backends only through the kernel API and the wrapper modules
  (``fastnn._kernels.runtime`` holds what they need: thread pool, cache folder, GPU tuning).
- ``fastnn.nn`` imports neither ``fastnn.io`` nor the estimators (``io`` builds on ``nn``; both
  write files through ``fastnn._archive``).
- Imports form no circle, function-level ones included.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "fastnn"
NEUTRAL = {"fastnn._kernels._device", "fastnn._kernels._validate", "fastnn._kernels._random",
           "fastnn._kernels._optim_rules", "fastnn._kernels._mlp_codes",
           "fastnn._kernels._norm_rules"}
# Imports still waiting to move behind the kernel API (none now; kept for a later change to list).
PENDING = set()


def _module(path):
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports():
    """(importer, imported module, line, module level?) for every import in fastnn."""
    found = []
    for path in ROOT.rglob("*.py"):
        mod = _module(path)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)] \
                    if node.level else []
                stem = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{stem}.{a.name}" if _is_module(f"{stem}.{a.name}") else stem
                           for a in node.names]
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
                  and node.args and isinstance(node.args[0], ast.JoinedStr)):
                # importlib.import_module(f"fastnn._kernels.{device}.{family}"): both backends
                prefix = "".join(v.value for v in node.args[0].values
                                 if isinstance(v, ast.Constant))
                targets = [prefix] if prefix.startswith("fastnn") else []
            else:
                continue
            for t in targets:
                if t.startswith("fastnn"):
                    found.append((mod, t, node.lineno, id(node) in top))
    return found


def _is_module(name):
    path = ROOT.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _backend(mod):
    for name in ("cpu", "cuda"):
        if mod == f"fastnn._kernels.{name}" or mod.startswith(f"fastnn._kernels.{name}."):
            return name
    return None


def test_backends_import_only_themselves_and_neutral_modules():
    bad = []
    for src, dst, line, _ in _imports():
        own = _backend(src)
        if own and _backend(dst) != own and dst not in NEUTRAL and \
                not dst.startswith(f"fastnn._kernels.{own}"):
            bad.append(f"{src}:{line} imports {dst}")
    assert not bad, "\n".join(bad)


def test_layers_io_and_estimators_reach_kernels_only_through_the_kernel_api():
    bad = []
    for src, dst, line, _ in _imports():
        upper = src.startswith(("fastnn.nn", "fastnn.io", "fastnn.sklearn"))
        if upper and (_backend(dst) or dst == "fastnn._kernels.") and (src, dst) not in PENDING:
            bad.append(f"{src}:{line} imports {dst}")
    assert not bad, "\n".join(bad)


TOP_FLOOR = ("fastnn._cli", "fastnn.__main__", "fastnn.demo", "fastnn._info", "fastnn._bench",
             "fastnn.testing", "fastnn.warmup_uses", "fastnn.playground")


def test_the_top_floor_reaches_backends_only_through_the_wrappers():
    bad = [f"{src}:{line} imports {dst}" for src, dst, line, _ in _imports()
           if (src in TOP_FLOOR or src.startswith(tuple(m + "." for m in TOP_FLOOR)))
           and _backend(dst)]
    assert not bad, "\n".join(bad)
    missing = [m for m in TOP_FLOOR if not _is_module(m)]
    assert not missing, f"renamed or removed: {missing} (update TOP_FLOOR)"


def test_the_pending_exceptions_are_still_needed():
    edges = {(src, dst) for src, dst, _, _ in _imports()}
    assert PENDING <= edges, PENDING - edges  # remove an entry once its import is gone


def test_nn_imports_neither_io_nor_the_estimators():
    bad = [f"{src}:{line} imports {dst}" for src, dst, line, _ in _imports()
           if src.startswith("fastnn.nn") and dst.startswith(("fastnn.io", "fastnn.sklearn"))]
    assert not bad, "\n".join(bad)


def test_imports_form_no_circle_function_level_ones_included():
    graph = {}
    for src, dst, _, _ in _imports():
        graph.setdefault(src, set()).add(dst)
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(stack + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = "done"

    for node in list(graph):
        if node not in state:
            visit(node, [])

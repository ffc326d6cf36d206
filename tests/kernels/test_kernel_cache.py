"""fastnn's kernel cache heals (``fastnn/_kernels/cpu/_cache.py``): damaged, unreadable and
foreign entries, processes compiling into one empty cache at once, folders that cannot be
written, and the ``fastnn cache`` command.

Every case runs real processes, each pointed at its own ``NUMBA_CACHE_DIR`` under ``tmp_path``
(the repository's own cache is never touched). Most use ``fastnn.kernels.relu`` on 8 elements (one
small serial kernel, about a second to compile); one fits a tiny MLP, the issue's case.
"""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

# Runs kernels (relu on each dtype named in argv[1], or an MLP fit with argv[1] == "mlp") and
# prints, as JSON: the results, the cache hits and misses of every fastnn dispatcher, the
# KernelCacheWarnings and the cache folder in use.
CHILD = r"""
import json, sys, warnings
caught = warnings.catch_warnings(record=True).__enter__()
warnings.simplefilter("always")
import numpy as np
import numba
from fastnn import kernels
results = {}
if sys.argv[1] == "mlp":
    from fastnn.sklearn import MLPClassifier
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5))
    y = (X[:, 0] > 0).astype(int)
    model = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, y)
    results["mlp"] = [model.predict(X).tolist(), float(model.loss_)]
else:
    for dtype in sys.argv[1].split(","):
        y = kernels.relu(np.arange(-3, 5).astype(dtype))
        results[dtype] = [str(y.dtype), y.tolist()]
from fastnn._kernels.cpu import _cache, _jit
found = list(_jit._specialised.values())
for name, module in list(sys.modules.items()):
    if name.startswith("fastnn._kernels.cpu."):
        for v in vars(module).values():
            found += list(v) if isinstance(v, tuple) else [v]
disp = {id(d): d for d in found if isinstance(d, numba.core.dispatcher.Dispatcher)}.values()
print(json.dumps({
    "results": results,
    "hits": sum(sum(d._cache_hits.values()) for d in disp),
    "misses": sum(sum(d._cache_misses.values()) for d in disp),
    "warnings": [str(w.message) for w in caught
                 if issubclass(w.category, kernels.KernelCacheWarning)],
    "folder": _cache.cache_folder()[0]}))
"""
RELU = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
DROP_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search"]


def _env(cache, **extra):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_LOCATOR_CLASSES"}
    env.update(NUMBA_CACHE_DIR=str(cache), **extra)
    return env


def _child(cache, use="float32", prefix=(), timeout=300, **env):
    proc = subprocess.run([*prefix, sys.executable, "-c", CHILD, use], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True, env=_env(cache, **env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _correct(out, dtypes=("float32",)):
    assert out["results"] == {d: [d, RELU] for d in dtypes}


def _files(out, pattern):
    return sorted(Path(out["folder"]).glob(pattern))


@pytest.fixture(scope="module")
def unprivileged(tmp_path_factory):
    """How to start a process for which file permissions bind: as it is for a normal user; as
    root (root reads a chmod-000 file), through setpriv without the capabilities that bypass
    them. Skips where that is not possible."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions would not bind")
    probe = tmp_path_factory.mktemp("perm") / "locked"
    probe.write_text("x")
    probe.chmod(0)
    proc = subprocess.run([*DROP_DAC, sys.executable, "-c", f"open({str(probe)!r})"],
                          capture_output=True)
    if proc.returncode == 0 or b"PermissionError" not in proc.stderr:
        pytest.skip("running as root and setpriv cannot drop CAP_DAC_OVERRIDE here")
    return DROP_DAC


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])


def _random(path):
    path.write_bytes(np.random.default_rng(0).bytes(max(path.stat().st_size, 64)))


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0xFF  # inside the machine code: every pickle still loads
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------------------------
# damaged entries

@pytest.mark.parametrize("damage, pattern", [
    (_truncate, "*.nbc"), (_truncate, "*.nbi"), (_random, "*.nbc"), (_random, "*.nbi"),
    (_flip, "*.nbc"), (lambda p: p.write_bytes(b""), "*.nbi")],
    ids=["truncated-nbc", "truncated-nbi", "random-nbc", "random-nbi", "bitflip-nbc", "empty-nbi"])
def test_damaged_entry_is_removed_recompiled_and_warned_once(tmp_path, damage, pattern):
    first = _child(tmp_path)
    _correct(first)
    assert first["misses"] >= 1 and first["warnings"] == []
    damaged = _files(first, pattern)
    assert damaged
    for path in damaged:
        damage(path)
    second = _child(tmp_path)
    _correct(second)
    assert len(second["warnings"]) == 1, second["warnings"]
    message = second["warnings"][0]
    assert first["folder"] in message and "damaged" in message
    assert any(p.name in message for p in damaged)
    if pattern == "*.nbc":
        assert second["misses"] >= 1  # compiled again (and saved afresh)
    third = _child(tmp_path)
    _correct(third)
    assert third["warnings"] == [] and third["misses"] == 0 and third["hits"] >= 1


@pytest.mark.parametrize("what", ["index", "index and data"])
def test_entries_of_another_numba_version_are_stale_not_damaged(tmp_path, what):
    """What every Numba upgrade leaves: a miss without a warning (Numba's own rule), and the
    entries are replaced. A data file that is still valid for this Numba loads."""
    first = _child(tmp_path)
    (index,) = _files(first, "*.nbi")
    (data,) = _files(first, "*.nbc")
    with open(index, "rb") as f:
        ours = pickle.load(f)
        rest = f.read()
    index.write_bytes(pickle.dumps("0.50.0") + rest)
    if what == "index and data":
        with open(data, "rb") as f:
            header = pickle.load(f)
            rest = f.read()
        data.write_bytes(pickle.dumps((header[0], "0.50.0", *header[2:])) + rest)
    second = _child(tmp_path)
    _correct(second)
    assert second["warnings"] == []
    if what == "index and data":
        assert second["misses"] == 1
        with open(index, "rb") as f:
            assert pickle.load(f) == ours  # replaced
    else:
        assert second["misses"] == 0
    third = _child(tmp_path)
    _correct(third)
    assert third["warnings"] == [] and third["misses"] == 0


@pytest.mark.parametrize("pattern", ["*.nbc", "*.nbi"])
def test_unreadable_entry_is_replaced_and_warned_once(tmp_path, unprivileged, pattern):
    first = _child(tmp_path, prefix=unprivileged)
    (locked,) = _files(first, pattern)
    locked.chmod(0)
    second = _child(tmp_path, prefix=unprivileged)
    _correct(second)
    assert len(second["warnings"]) == 1, second["warnings"]
    assert "PermissionError" in second["warnings"][0] and first["folder"] in second["warnings"][0]
    third = _child(tmp_path, prefix=unprivileged)
    _correct(third)
    assert third["warnings"] == [] and third["misses"] == 0


def test_an_entry_holding_another_signatures_code_is_never_loaded(tmp_path):
    """What Numba's numbered data files let two processes do (both save ``.1.nbc``): an index
    entry, or a data file, with another signature's code. fastnn checks the key stored in the
    file: a miss, compiled again, never float64 code run on float32 arrays."""
    both = ("float32", "float64")
    first = _child(tmp_path, "float32,float64")
    _correct(first, both)
    (index,) = _files(first, "*.nbi")
    with open(index, "rb") as f:
        version = pickle.load(f)
        stamp, overloads = pickle.loads(f.read())
    name = {str(key[0][0].dtype): file for key, file in overloads.items()}
    folder = Path(first["folder"])
    # the float32 entry names float64's file, and float32's own file holds float64's code
    index.write_bytes(pickle.dumps(version) + pickle.dumps(
        (stamp, {key: name["float64"] for key in overloads})))
    shutil.copyfile(folder / name["float64"], folder / name["float32"])
    second = _child(tmp_path, "float32,float64")
    _correct(second, both)
    assert second["misses"] == 1 and second["hits"] == 1  # float32 compiled again
    third = _child(tmp_path, "float32,float64")
    _correct(third, both)
    assert third["warnings"] == [] and third["misses"] == 0 and third["hits"] == 2


@pytest.mark.slow
def test_mlp_fit_after_truncated_cache_files(tmp_path):
    """The issue: with the .nbc files truncated, the next fit died with ``UnpicklingError: pickle
    data was truncated`` until the cache was deleted by hand."""
    first = _child(tmp_path, "mlp", timeout=600)
    assert first["warnings"] == []
    data = _files(first, "*.nbc")
    assert len(data) > 5
    for path in data:
        _truncate(path)
    second = _child(tmp_path, "mlp", timeout=600)
    assert second["results"] == first["results"]
    assert len(second["warnings"]) == 1 and first["folder"] in second["warnings"][0]
    third = _child(tmp_path, "mlp", timeout=600)
    assert third["results"] == first["results"]
    assert third["warnings"] == [] and third["misses"] == 0


# --------------------------------------------------------------------------------------------
# several processes at once

@pytest.mark.parametrize("round_", range(2))
def test_processes_compiling_into_one_empty_cache_at_once(tmp_path, round_):
    uses = ["float32", "float64,float32", "float64"]
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, use], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_env(tmp_path)) for use in uses]
    for use, proc in zip(uses, procs):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        result = json.loads(out.strip().splitlines()[-1])
        _correct(result, use.split(","))
        assert result["warnings"] == []
    later = _child(tmp_path, "float32,float64")
    _correct(later, ("float32", "float64"))
    assert later["warnings"] == [] and later["misses"] == 0 and later["hits"] == 2
    assert len(_files(later, "*.nbc")) == 2 and not _files(later, "*.tmp.*")


# --------------------------------------------------------------------------------------------
# folders that cannot be written

def test_cache_folder_that_cannot_be_created(tmp_path):
    """NUMBA_CACHE_DIR under a regular file: no user can create it (root neither)."""
    (tmp_path / "file").write_text("not a folder")
    cache = tmp_path / "file" / "cache"
    for _ in range(2):  # each process computes, and warns once
        out = _child(cache, "float32,float64")
        _correct(out, ("float32", "float64"))
        assert len(out["warnings"]) == 1, out["warnings"]
        assert str(cache) in out["warnings"][0] and "NUMBA_CACHE_DIR" in out["warnings"][0]
        assert out["hits"] == 0


def test_no_usable_cache_folder_at_all_still_imports(tmp_path):
    """Where Numba finds no folder at all it raises "no locator available" when the kernel
    modules import (``cache=True``); fastnn compiles in memory and says how to fix it."""
    (tmp_path / "file").write_text("not a folder")
    out = _child(tmp_path / "file" / "cache",
                 NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator")
    _correct(out)
    assert len(out["warnings"]) == 1 and "NUMBA_CACHE_DIR" in out["warnings"][0]


def test_read_only_cache_folder_loads_what_is_there(tmp_path, unprivileged):
    first = _child(tmp_path, prefix=unprivileged)
    folder = Path(first["folder"])
    for d in (folder, tmp_path):
        d.chmod(0o555)
    try:
        out = _child(tmp_path, "float32,float64", prefix=unprivileged)
    finally:
        for d in (folder, tmp_path):
            d.chmod(0o755)
    _correct(out, ("float32", "float64"))
    assert out["hits"] == 1 and out["misses"] == 1  # float32 loaded, float64 compiled in memory
    assert len(out["warnings"]) == 1, out["warnings"]
    assert str(folder) in out["warnings"][0] and "NUMBA_CACHE_DIR" in out["warnings"][0]


# --------------------------------------------------------------------------------------------
# in this process: the hook and the public name

def test_every_dispatcher_fastnn_makes_has_the_kernel_cache():
    import numba

    from fastnn import kernels
    from fastnn._kernels.cpu import _jit, activation, mlp  # noqa: F401 (their kernels)
    from fastnn._kernels.cpu._cache import KernelCache
    copy = _jit.specialise(activation._elementwise, "probe_copy", calls={"rule": activation._relu})
    found = [copy, *_jit._specialised.values()]
    for name, module in list(sys.modules.items()):
        if name.startswith("fastnn._kernels.cpu."):
            for v in vars(module).values():
                found += list(v) if isinstance(v, tuple) else [v]
    dispatchers = [d for d in found if isinstance(d, numba.core.dispatcher.Dispatcher)]
    assert len(dispatchers) > 20
    assert all(isinstance(d._cache, KernelCache) for d in dispatchers)
    assert issubclass(kernels.KernelCacheWarning, RuntimeWarning)
    assert "KernelCacheWarning" in kernels.__all__


# --------------------------------------------------------------------------------------------
# fastnn cache, fastnn info

def _cli(cache, *args):
    proc = subprocess.run([sys.executable, "-m", "fastnn", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=_env(cache))
    return proc.returncode, proc.stdout + proc.stderr


def test_cache_command_shows_and_clears_only_fastnns_entries(tmp_path):
    first = _child(tmp_path)
    folder = Path(first["folder"])
    code, out = _cli(tmp_path, "cache")
    assert code == 0 and str(folder) in out and "writable: yes" in out and "in 2 files" in out
    assert _cli(tmp_path, "cache", "info")[1] == out
    leftover = folder / "activation._relu_kernel__serial-1.py311.nbi.tmp.0123456789abcdef"
    leftover.write_bytes(b"x" * 10)
    others = [folder / "activation.cpython-311.pyc", folder / "otherpkg.f-3.py311.nbi",
              folder / "otherpkg.f-3.py311.1.nbc"]
    for path in others:
        path.write_bytes(b"keep")
    size = sum(p.stat().st_size for p in [*_files(first, "*.nb?"), leftover]
               if p.name.startswith("activation"))
    code, out = _cli(tmp_path, "cache", "clear")
    assert code == 0, out
    assert f"removed 3 files, {size} bytes" in out and str(folder) in out
    assert all(p.exists() for p in others) and not leftover.exists()
    assert not [p for p in folder.iterdir() if p.name.startswith("activation.") and
                p.suffix in (".nbi", ".nbc")]
    code, out = _cli(tmp_path, "cache", "clear")
    assert code == 0 and "nothing to remove" in out
    code, out = _cli(tmp_path, "info")
    assert code == 0 and "Kernel cache" in out and str(folder) in out
    assert "writable: yes" in out and re.search(r"size: [\d.]+ (B|KiB|MiB|GiB) in \d+ files", out)


def test_cache_command_on_an_unwritable_folder_says_how_to_fix_it(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    code, out = _cli(tmp_path / "file" / "cache", "cache")
    assert code == 0 and "writable: no" in out and "set NUMBA_CACHE_DIR to a writable" in out


_HELPER = "from fastnn._kernels.cpu._jit import jit\n\n\n@jit\ndef helper():\n    return {}\n"
_KERNEL = ("from fastnn._kernels.cpu._jit import jit\n\nfrom .helper import helper\n\n\n"
           "@jit\ndef kernel():\n    return helper() + 1\n")


def test_an_edit_to_a_helper_in_another_file_makes_the_kernel_stale(tmp_path):
    """Numba's own stamp sees the kernel's file only; fastnn's covers the files it imports: a
    kernel whose helper changed compiles again instead of loading the old machine code."""
    pkg = tmp_path / "src" / "probe_kernels"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "kernel.py").write_text(_KERNEL)
    code = "from probe_kernels.kernel import kernel; print(kernel())"
    env = _env(tmp_path / "cache", PYTHONPATH=str(tmp_path / "src"))
    outs = []
    for value in (1, 1, 41):
        (pkg / "helper.py").write_text(_HELPER.format(value))
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=300,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(int(proc.stdout.split()[-1]))
    assert outs == [2, 2, 42]


def test_the_source_stamp_follows_every_relative_import_of_the_kernels():
    """``_cache._file`` reads imports with a regular expression (fast: every process stamps
    its kernels); it finds what Python's parser finds, in every CPU kernel module."""
    import ast

    from fastnn._kernels.cpu import _cache
    cpu = ROOT / "fastnn" / "_kernels" / "cpu"
    for path in sorted(cpu.glob("*.py")):
        expected = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                target = base.joinpath(*(node.module.split(".") if node.module else []))
                for c in [target.with_name(target.name + ".py"), target / "__init__.py",
                          *[target / (a.name + ".py") for a in node.names]]:
                    if c.is_file():
                        expected.add(str(c))
        assert set(_cache._file(str(path))[1]) == expected, path.name
    mlp = {Path(p).name for p in _cache._sources(str(cpu / "mlp.py"))}
    assert {"vecmath.py", "_mlp_codes.py", "_optim_rules.py", "linear.py"} <= mlp

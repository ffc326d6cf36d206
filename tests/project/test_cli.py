"""The ``fastnn`` command: help texts, ``info``, a short ``demo``, how ``bench`` drives the suite,
and the packaging that installs it (console script, LICENSE, the benchmark scripts)."""
import importlib
import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastnn import _cli, demo
from fastnn._bench import run_all

ROOT = Path(__file__).resolve().parents[2]
HAS_MPL = importlib.util.find_spec("matplotlib") is not None


def _run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "fastnn", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _main(capsys, *argv):
    """``fastnn ARGV`` in this process: (exit status, stdout)."""
    try:
        code = _cli.main(list(argv))
    except SystemExit as exc:  # argparse's --help and errors
        code = exc.code
    return code, capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# packaging

def test_pyproject_declares_the_console_script_and_the_license():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["fastnn"] == "fastnn._cli:main"
    module, _, name = project["scripts"]["fastnn"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    assert project["license"] == "BSD-3-Clause"
    assert "LICENSE" in project["license-files"]
    text = (ROOT / "LICENSE").read_text()
    assert "BSD 3-Clause License" in text and "the fastnn developers" in text


def test_benchmark_scripts_ship_inside_the_package():
    from importlib.resources import files
    bench = files("fastnn._bench")
    for name in run_all.BENCHMARKS.values():
        assert bench.joinpath(name[0]).is_file(), name
    # the old paths in a checkout are shims of the same scripts
    for shim in ("run_all.py", "bench_kernels.py", "_common.py"):
        assert f"fastnn/_bench/{shim}" in (ROOT / "benchmarks" / shim).read_text()


def test_old_benchmark_path_still_runs():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--quick" in proc.stdout and "--no-readme" in proc.stdout


# --------------------------------------------------------------------------------------------
# help

def test_python_m_fastnn_help():
    proc = _run("--help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "bench", "info"):
        assert command in proc.stdout
    assert "``" not in proc.stdout


@pytest.mark.parametrize("command", ["demo", "bench", "info", "warmup"])
def test_each_command_has_plain_help(capsys, command):
    code, out = _main(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: fastnn {command}")
    assert "``" not in out and ":func:" not in out and ":class:" not in out
    words = {"demo": ("--quick", "--plot", "--epochs"), "bench": ("--quick", "--only", "--out"),
             "info": ("thread pool", "CUDA"),
             "warmup": ("--all", "--dtype", "mlp", "cnn", "rnn", "kernel cache", "Docker",
                        "read-only")}[command]
    flat = " ".join(out.split())
    for w in words:
        assert w in flat, (command, w)


def test_no_command_prints_help(capsys):
    code, out = _main(capsys)
    assert code == 0
    assert out.startswith("usage: fastnn") and "demo" in out and "info" in out


def test_version(capsys):
    import fastnn
    code, out = _main(capsys, "--version")
    assert code == 0 and out.strip() == f"fastnn {fastnn.__version__}"


def test_old_demo_options_run_the_demo(monkeypatch):
    seen = []
    monkeypatch.setattr(demo, "main", lambda argv, prog=None: seen.append(argv) or 0)
    assert _cli.main(["--epochs", "3", "--cnn-epochs", "1"]) == 0
    assert seen == [["--epochs", "3", "--cnn-epochs", "1"]]


# --------------------------------------------------------------------------------------------
# info

def test_info_command_prints_the_key_facts():
    proc = _run("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fact in ("fastnn 0.", "python", "numpy", "numba", "scikit-learn", "scipy",
                 "threadpoolctl", "torch", "matplotlib", "cpu count", "sched_getaffinity",
                 "NUMBA_NUM_THREADS", "get_num_threads()", "threading layer", "Kernel cache",
                 "_kernels", "CUDA", "device='auto'", "instruction set", "conv register tile",
                 "cpu quota"):
        assert fact in out, fact
    assert "not yet chosen" not in out  # a tiny parallel kernel ran first
    assert re.search(r"blas: \w+", out)


def test_info_dict_and_show_versions(capsys):
    import fastnn
    d = fastnn.info()
    assert set(d) == {"fastnn", "system", "dependencies", "threads", "kernel_cache", "kernels",
                      "cuda"}
    assert d["kernels"]["instruction_set"] and d["kernels"]["conv_tile"] in ("8x3", "4x3")
    assert d["system"]["cpu_count"] >= 1 and d["system"]["affinity_count"] >= 1
    assert d["dependencies"]["numpy"] and d["dependencies"]["numba"]
    assert d["threads"]["numba_num_threads"] >= 1
    assert d["threads"]["numba_threading_layer"] in ("omp", "tbb", "workqueue")
    assert any(p.get("user_api") == "blas" for p in d["threads"]["pools"])
    assert d["kernel_cache"]["files"] >= 1 and d["kernel_cache"]["bytes"] > 0
    assert d["cuda"]["auto_device"] in ("cpu", "cuda")
    fastnn.show_versions()
    assert "Kernel cache" in capsys.readouterr().out


def test_info_never_fails_without_cuda(monkeypatch):
    from fastnn import _info
    from fastnn._kernels import _dispatch

    def broken():
        raise RuntimeError("no driver here")
    monkeypatch.setattr(_dispatch, "_cuda_driver_loadable", broken)
    c = _info._cuda()
    assert c["available"] is False and "no driver here" in c["error"]
    assert "no driver here" in _info.format_info({**_info.info(), "cuda": c})


# --------------------------------------------------------------------------------------------
# demo

def test_speed_phrase_is_right_either_way():
    assert demo.speed_phrase(1.0, 2.3) == "fastnn 2.3x faster than scikit-learn"
    assert demo.speed_phrase(1.25, 1.0) == "fastnn 0.80x as fast as scikit-learn (slower)"


def test_progress_line_rewrites_on_a_terminal_and_prints_lines_otherwise():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = demo.Progress(stream)
        p.step("MLP fit 1/2: fastnn")
        p.step("CNN epoch 1/3", transient=True)
        p.step("x")
        p.clear()
    assert "\n" not in tty.getvalue() and tty.getvalue().count("\r") >= 3
    assert pipe.getvalue() == "MLP fit 1/2: fastnn\nx\n"


def test_demo_quick_reports_both_accuracies_and_the_ratio(capsys, tmp_path):
    png = tmp_path / "curves.png"
    argv = ["demo", "--quick", "--epochs", "3", "--cnn-epochs", "1", "--repeats", "2"]
    code, out = _main(capsys, *argv, *(["--plot", str(png)] if HAS_MPL else []))
    assert code == 0
    assert re.search(r"fastnn\.sklearn\.MLPClassifier : accuracy 0\.\d{4}  fit \d+\.\d\d s", out)
    assert re.search(r"sklearn MLPClassifier +: accuracy 0\.\d{4}  fit \d+\.\d\d s", out)
    assert "median of 2" in out
    assert re.search(r"fastnn \d+\.\d+x (faster than|as fast as) scikit-learn", out)
    assert re.search(r"CNN .*\n  accuracy 0\.\d{4}  fit \d+\.\d\d s", out)
    assert "load average" in out
    assert out.count("MLP fit ") == 4  # not a terminal: one plain line per timed fit
    if HAS_MPL:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_has_both_mlp_curves_and_the_cnn(tmp_path):
    pytest.importorskip("matplotlib")
    path = demo.save_plot({"fastnn MLPClassifier": [2.0, 1.0], "sklearn MLPClassifier": [2.1, 1.1],
                           "fastnn CNN": [1.5, 0.5, 0.3]}, tmp_path / "p.png")
    assert Path(path).read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_fails_before_training(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    monkeypatch.setattr(demo, "run", lambda **kw: pytest.fail("trained anyway"))
    with pytest.raises(SystemExit, match="needs matplotlib"):
        demo.main(["--quick", "--plot", "x.png"])


# --------------------------------------------------------------------------------------------
# bench: the commands the suite runs (a real quick run takes minutes: bench_kernels' own smoke
# test in test_benchmarks.py runs one benchmark for real)

ESTIMATORS = {"environment": {"machine": {"cpu": {"model_name": "Test CPU", "simd": ["avx2"]},
                                          "usable_cpus": 2}},
              "mlp": [{"data": "digits", "hidden_layer_sizes": [100], "load": "quiet",
                       "epochs": 5, "speedup": 4.0, "target": ">= 5.0x", "met": False,
                       "loadavg": [0.5, 0.5, 0.5]}]}
KERNELS = {"cases": [{"name": "adam_step", "ratio": {"torch": 1.5, "numpy": 3.0},
                      "target": {"peer": "torch", "min": 1.0, "pass": True},
                      "loadavg_before": [0.5, 0.5, 0.5]}]}


@pytest.fixture
def fake_suite(monkeypatch):
    calls = []

    def run(script, *flags, out):
        calls.append((script, list(flags), Path(out)))
        return {"bench_estimators.py": ESTIMATORS, "bench_kernels.py": KERNELS,
                "bench_graphs.py": GRAPHS}.get(script, {})
    monkeypatch.setattr(run_all, "run", run)
    monkeypatch.setattr(run_all, "update_readme", lambda text: pytest.fail("README rewritten"))
    return calls


def test_bench_runs_the_selected_benchmarks_into_out(capsys, tmp_path, fake_suite):
    code, out = _main(capsys, "bench", "--quick", "--only", "estimators,kernels",
                      "--out", str(tmp_path))
    assert code == 0
    has_torch = run_all.installed("torch")
    no_torch = [] if has_torch else ["--no-torch"]
    assert fake_suite == [
        ("bench_estimators.py", ["--quick"], tmp_path / "estimators.json"),
        ("bench_kernels.py", ["--quick", *no_torch], tmp_path / "kernels.json"),
        ("bench_kernels.py", ["--quick", *no_torch, "--busy", "--only", run_all.KERNEL_CASES],
         tmp_path / "kernels_busy.json")]
    table = (tmp_path / "table.md").read_text()
    assert "`fastnn bench --quick --only estimators,kernels" in table and "Test CPU" in table
    assert "| MLPClassifier fit, digits, (100,), 5 epochs | scikit-learn | 4.00x |" in table
    assert "| kernel adam_step | PyTorch | 1.50x |" in table
    assert table in out


GRAPHS = {"models": {"tcn": {"quiet": {"ratio": 1.2, "target": 1.5, "loadavg": [0.5, 0, 0]},
                             "busy": {"ratio": 3.0, "target": 1.5}}}}


def test_bench_full_run_from_the_command_never_rewrites_readme(capsys, tmp_path, fake_suite,
                                                               monkeypatch):
    monkeypatch.setattr(run_all, "installed", lambda module: True)   # PyTorch and scikit-learn
    code, _ = _main(capsys, "bench", "--out", str(tmp_path))
    assert code == 0
    assert [c[0] for c in fake_suite] == ["bench_training.py", "bench_estimators.py",
                                          "bench_predict.py", "bench_startup.py",
                                          "bench_kernels.py", "bench_kernels.py",
                                          "bench_graphs.py"]
    table = (tmp_path / "table.md").read_text()
    assert ("| TCN training (MNIST-1D's: 4 residual blocks of dilated causal Conv1D 64, "
            "BatchNorm; batch 64, Adam; samples/s) | PyTorch CPU loop | 1.20x | 3.00x | 0.5 | "
            ">= 1.5x | **no** |") in table


def test_bench_without_torch_skips_it_with_a_note(capsys, tmp_path, fake_suite, monkeypatch):
    monkeypatch.setattr(run_all, "installed", lambda module: module != "torch")
    code, out = _main(capsys, "bench", "--quick", "--no-busy", "--only", "training,kernels",
                      "--out", str(tmp_path))
    assert code == 0
    assert fake_suite == [("bench_training.py", ["--quick", "--no-busy", "--no-torch"],
                           tmp_path / "training.json"),
                          ("bench_kernels.py", ["--quick", "--no-torch"],
                           tmp_path / "kernels.json")]
    assert "note: PyTorch comparisons skipped (PyTorch is not installed" in out
    assert "Note: PyTorch comparisons skipped" in (tmp_path / "table.md").read_text()


def test_bench_rejects_an_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as exc:
        _cli.main(["bench", "--only", "nonsense"])
    assert exc.value.code == 2
    assert "unknown benchmark nonsense" in capsys.readouterr().err


def test_run_all_rewrites_readme_only_after_a_full_run_from_a_checkout(tmp_path, fake_suite,
                                                                       monkeypatch, capsys):
    written = []
    monkeypatch.setattr(run_all, "update_readme", written.append)
    monkeypatch.setattr(run_all, "installed", lambda module: True)
    run_all.main(["--quick", "--out", str(tmp_path)])
    run_all.main(["--only", "kernels", "--out", str(tmp_path)])
    run_all.main(["--no-readme", "--out", str(tmp_path)])
    assert written == []
    run_all.main(["--out", str(tmp_path)])
    assert len(written) == 1 and "python benchmarks/run_all.py --out" in written[0]
    monkeypatch.setattr(run_all, "CHECKOUT", False)  # an installed fastnn: no README to rewrite
    run_all.main(["--out", str(tmp_path)])
    assert len(written) == 1


def test_bench_relative_out_is_the_callers_folder(capsys, tmp_path, fake_suite, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the scripts run in the checkout: --out must not follow them
    code, _ = _main(capsys, "bench", "--quick", "--only", "predict", "--out", "res")
    assert code == 0
    assert fake_suite[0][2] == tmp_path / "res" / "predict.json"
    assert (tmp_path / "res" / "table.md").is_file()


# --------------------------------------------------------------------------------------------
# warmup

@pytest.mark.parametrize("argv,message", [
    (["gpu"], "unknown use 'gpu'"), (["mlp", "--dtype", "float16"], "float32 and/or float64")])
def test_warmup_rejects_unknown_uses_and_dtypes(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        _cli.main(["warmup", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_warmup_compiles_what_a_use_needs_and_a_new_process_loads_it():
    # the second process finds every kernel the first one compiled (or found) in the cache
    # (the rnn use: the quickest to compile on a CI runner's empty cache)
    first = _run("warmup", "rnn", "--list", timeout=900)
    assert first.returncode == 0, first.stderr
    assert "fastnn warmup: rnn" in first.stdout and "float32" in first.stdout
    second = _run("warmup", "rnn", timeout=300)
    assert second.returncode == 0, second.stderr
    assert "rnn      float32: everything loaded from the cache" in second.stdout, second.stdout


def test_warm_returns_a_compile_log_per_use(monkeypatch):
    from fastnn import warmup_uses
    calls = []
    monkeypatch.setitem(warmup_uses._RUN, "rnn", lambda dtype: calls.append(dtype))
    logs = warmup_uses.warm(["rnn"], dtypes=["float32", "float64"], verbose=False)
    assert calls == ["float32", "float64"] and list(logs) == ["rnn"] and len(logs["rnn"]) == 0
    with pytest.raises(ValueError, match="unknown uses"):
        warmup_uses.warm(["nope"])

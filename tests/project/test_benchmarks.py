"""Smoke tests of the benchmarks: the kernel benchmark's ``--quick`` run writes every case in the
expected JSON; the graph benchmark's ``--profile`` says where a fit spends its time."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_kernels.py"
HAS_TORCH = importlib.util.find_spec("torch") is not None


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    sys.path.insert(0, str(BENCH.parent))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


def _run(tmp_path, *flags):
    out = tmp_path / "kernels.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--out", str(out), *flags],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def _check_rows(rows, peers):
    for row in rows:
        keys = {"name", "group", "shape", "impls", "median_ms", "ratio", "loadavg_before"}
        assert keys <= set(row)
        assert set(row["impls"]) == {"fastnn"} | set(peers), row["name"]
        for t in row["impls"].values():
            assert t["median_s"] > 0 and len(t["samples"]) == 1 and t["calls"] >= 1
        assert set(row["ratio"]) == set(peers)
        assert all(r > 0 for r in row["ratio"].values())
        rate = "gflop_s" if row["group"] in ("conv", "linear") else "gb_s"
        assert set(row[rate]) == set(row["impls"]), row["name"]
        if rate == "gb_s":
            assert row["pct_ceiling"]["fastnn"] > 0
        if row["name"] != "dropout fwd+bwd":  # random masks: nothing to compare
            errs = row["check"]["max_rel_err"]
            assert set(errs) | {row["check"]["reference"]} == set(row["impls"])
            assert max(errs.values()) < 1e-4, (row["name"], errs)
        if "target" in row:
            t = row["target"]
            assert t["peer"] in ("torch", "numpy", "ceiling") and t["min"] > 0
            if t["peer"] == "ceiling" or "torch" in peers:
                assert isinstance(t["pass"], bool) and t["value"] > 0


def test_quick_run_writes_every_case(tmp_path):
    data, stdout = _run(tmp_path)
    assert {"benchmark", "command", "started", "loadavg_before", "loadavg_after", "config",
            "environment", "ceiling", "cases", "summary", "seconds"} <= set(data)
    assert data["benchmark"] == "kernels" and data["config"]["quick"] is True
    assert data["config"]["repeats"] == 1 and data["config"]["torch"] == HAS_TORCH
    env = data["environment"]
    assert {"machine", "threads", "versions"} <= set(env)
    assert env["machine"]["logical_cpus"] >= 1
    assert env["threads"]["numba"]["num_threads"] >= 1
    assert "not launched" not in env["threads"]["numba"]["threading_layer"]
    assert any(p["user_api"] == "blas" for p in env["threads"]["pools"])
    for lib in ("python", "numpy", "numba", "scipy", "sklearn", "fastnn"):
        assert env["versions"][lib]
    assert data["ceiling"]["gb_s"] > 0 and data["ceiling"]["alloc_copy_gb_s"] > 0

    names = [c.name for c in _load_bench().cases()]
    assert [row["name"] for row in data["cases"]] == names
    assert any(n.startswith("conv2d fwd+bwd") for n in names) and "adam_step" in names
    _check_rows(data["cases"], ("numpy", "torch") if HAS_TORCH else ("numpy",))
    summary = data["summary"]
    targets = [row for row in data["cases"] if "target" in row]
    assert summary["cases"] == len(names) and summary["targets"] == len(targets) >= 13
    assert "PASS" in stdout or "MISS" in stdout


def test_only_and_no_torch(tmp_path):
    data, _ = _run(tmp_path, "--only", "RELU_BACK,batch_norm", "--no-torch")
    assert [row["name"] for row in data["cases"]] == ["relu_backward", "batch_norm fwd+bwd"]
    assert data["config"]["torch"] is False
    _check_rows(data["cases"], ("numpy",))


def test_only_without_match_fails(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--only", "no-such-case",
                           "--out", str(tmp_path / "x.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "matches no case" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_run_all_quick_runs_every_benchmark_and_writes_the_table():
    """``run_all.py --quick``: every CPU benchmark (quiet and beside a busy process) at tiny sizes,
    then the table README shows (README itself is left alone with --quick)."""
    readme = (ROOT / "README.md").read_text()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick"],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    table = (ROOT / "benchmarks" / "results" / "table.md").read_text()
    assert "| case | peer | ratio | busy | load | target | met |" in table
    for case in ("MLPClassifier fit", "predict_proba", "fresh process", "kernel conv2d"):
        assert case in table, case
    if HAS_TORCH:
        assert "LeNet-5 training" in table and "SimpleConvNet training" in table
    assert (ROOT / "README.md").read_text() == readme


def test_graph_benchmark_profile_says_where_a_fit_spends_its_time(tmp_path):
    out = tmp_path / "graphs.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_graphs.py"),
                           "--quick", "--no-busy", "--only", "tabular", "--profile",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prof = json.loads(out.read_text())["profiles"]["tabular"]
    assert prof["seconds"] > 0 and 0 < prof["kernels_share"] < 1
    assert len(prof["top"]) == 8 and all(r["calls"] >= 1 for r in prof["top"])
    assert "inside fastnn/_kernels" in proc.stdout

"""Smoke runs of the example scripts: each ``main(["--quick", "--out", dir])`` writes its PNGs."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPTS = {
    "decision_boundaries": ["decision_boundaries.png"],
    "optimizers": ["optimizers_paths.png", "optimizers_curves.png"],
    "lr_sweep": ["lr_sweep.png"],
    "weight_init": ["weight_init.png", "weight_init_batchnorm.png"],
    "batchnorm_activations": ["activations.png", "batchnorm.png"],
    "regularisation": ["regularisation.png"],
    "digits_cnn": ["digits_cnn_training.png", "digits_cnn_errors.png"],
    "cnn_filters": ["cnn_filters.png"],
    "sequences": ["sequences_forecast.png", "sequences_digits.png"],
    "gradcheck": ["gradcheck.png"],
    "grid_search": ["grid_search.png"],
    "dask_grid_search": ["dask_grid_search.png"],
    "kernels_demo": ["kernels_demo.png"],
    "speed_chart": ["speed_chart.png"],  # --quick plots a made-up results file
    "mnist1d_benchmark": ["mnist1d_results.png", "mnist1d_results.json"],
    "tabular_embeddings": ["tabular_embeddings.png"],
    "playground_tour": ["playground.png"],
}
NOT_EXAMPLES = {"make_gallery"}  # runs the examples, is not one
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load(name):
    if name == "dask_grid_search":
        pytest.importorskip("dask.distributed")
    if name == "mnist1d_benchmark":
        pytest.importorskip("mnist1d")
    if name == "playground_tour":
        from tests.playground.test_browser import _browser_or_skip
        _browser_or_skip()   # (not skipped in CI)
    spec = importlib.util.spec_from_file_location(f"fastnn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_script_is_listed():
    found = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")} - NOT_EXAMPLES
    assert found == set(SCRIPTS)
    readme = (EXAMPLES / "README.md").read_text()
    for name in SCRIPTS:
        assert f"{name}.py" in readme


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_quick_run_writes_pngs(name, tmp_path, capsys):
    out = tmp_path / "figures"
    saved = _load(name).main(["--quick", "--out", str(out)])
    assert sorted(Path(p).name for p in saved) == sorted(SCRIPTS[name])
    assert sorted(p.name for p in out.iterdir()) == sorted(SCRIPTS[name])
    for png in (f for f in SCRIPTS[name] if f.endswith(".png")):
        data = (out / png).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 5000  # a real figure, not an empty canvas
    assert "saved" in capsys.readouterr().out


def test_speed_chart_without_results_saves_nothing(tmp_path, capsys):
    saved = _load("speed_chart").main(["--results", str(tmp_path / "none"),
                                       "--out", str(tmp_path / "figures")])
    assert saved == []
    assert "no benchmark results" in capsys.readouterr().out

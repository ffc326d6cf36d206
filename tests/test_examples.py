"""Smoke runs of the example scripts: each ``main(["--quick", "--out", dir])`` writes its PNGs."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = {
    "digits_cnn": ["digits_cnn_training.png", "digits_cnn_filters.png", "digits_cnn_errors.png"],
    "optimizers": ["optimizers_paths.png", "optimizers_curves.png"],
    "decision_boundaries": ["decision_boundaries.png"],
    "regularisation": ["regularisation.png"],
    "sequences": ["sequences_forecast.png", "sequences_digits.png"],
    "batchnorm_activations": ["activations.png", "batchnorm.png"],
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"fastnn_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_script_is_listed():
    found = {p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")}
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
    for png in SCRIPTS[name]:
        data = (out / png).read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 5000  # a real figure, not an empty canvas
    assert "saved" in capsys.readouterr().out

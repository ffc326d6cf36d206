"""README's code runs as pasted: every ```python block, in order, in one namespace."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_commands():
    commands = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert commands[0].strip() == "pip install -e . && fastnn demo"
    ci = (README.parent / ".ci" / "run").read_text()
    assert commands[1].strip() in ci  # CI runs exactly README's test command


@pytest.mark.slow
def test_python_blocks_run_as_pasted(capsys):
    blocks = _blocks()
    assert len(blocks) >= 3
    namespace = {}
    for code in blocks:
        if "skl2onnx" in code:
            pytest.importorskip("skl2onnx")
        exec(compile(code, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "MLP accuracy" in out and "CNN accuracy" in out
    assert float(out.split("MLP accuracy")[1].split()[0]) > 0.9


def test_every_picture_and_link_in_the_readme_exists():
    text = README.read_text()
    targets = re.findall(r"\]\(([^)#]+)\)", text)
    assert any(t.startswith("docs/images/") for t in targets)
    missing = [t for t in targets if not t.startswith("http") and not (README.parent / t).exists()]
    assert not missing, missing

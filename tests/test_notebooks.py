"""The notebooks as committed: no outputs or execution counts, and no Prefect (`make notebooks` runs them).

To strip a notebook after running it: ``.venv/bin/python tests/test_notebooks.py notebooks/NAME.ipynb`` (or, in
Jupyter, Edit > Clear Outputs of All Cells, then save).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = ["01_explore_fleet.ipynb", "02_train_and_evaluate.ipynb", "03_score_and_explain.ipynb"]
# the notebooks use features/ and models/; from pipelines/ only modules that never import prefect
FLOW_IMPORT = re.compile(
    r"^\s*(from|import)\s+(prefect|pipelines\.(flows|cli|deploy|backtest_flow|promotions|settings))\b", re.M
)


def stored_outputs(path: Path) -> list[str]:
    """What a notebook file stores beyond its sources: outputs, execution counts and timings (empty when clean)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if cell.get("outputs"):
            found.append(f"cell {number}: {len(cell['outputs'])} outputs")
        if cell.get("execution_count") is not None:
            found.append(f"cell {number}: execution count {cell['execution_count']}")
        if "execution" in cell.get("metadata", {}):
            found.append(f"cell {number}: execution timings")
    return found


def flow_imports(path: Path) -> list[str]:
    """Lines of code cells that import Prefect or a pipelines module that does."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    return [m.group(0).strip() for m in FLOW_IMPORT.finditer(code)]


def strip(path: Path) -> None:
    """Remove outputs, execution counts and timings in place, keeping the file's JSON layout (nbformat's)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            cell.get("metadata", {}).pop("execution", None)
    path.write_text(
        json.dumps(notebook, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def test_the_numbered_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_committed_without_outputs(name):
    path = NOTEBOOKS / name
    found = stored_outputs(path)
    assert not found, (
        f"{path.name} stores {'; '.join(found)}; fix: .venv/bin/python tests/test_notebooks.py {path}"
    )


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_needs_no_prefect(name):
    assert flow_imports(NOTEBOOKS / name) == []


def test_the_check_finds_outputs_and_strip_removes_them(tmp_path):
    path = tmp_path / "run.ipynb"
    source = json.loads((NOTEBOOKS / EXPECTED[0]).read_text(encoding="utf-8"))
    code = next(c for c in source["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 3
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["42\n"]}]
    code["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    path.write_text(json.dumps(source, indent=1), encoding="utf-8")
    assert len(stored_outputs(path)) == 3
    strip(path)
    assert stored_outputs(path) == []
    assert path.read_text(encoding="utf-8") == (NOTEBOOKS / EXPECTED[0]).read_text(encoding="utf-8")


def test_the_check_finds_flow_imports(tmp_path):
    path = tmp_path / "flow.ipynb"
    source = json.loads((NOTEBOOKS / EXPECTED[0]).read_text(encoding="utf-8"))
    code = next(c for c in source["cells"] if c["cell_type"] == "code")
    code["source"] = ["from pipelines.flows import train_flow\n", "import prefect"]
    path.write_text(json.dumps(source), encoding="utf-8")
    assert flow_imports(path) == ["from pipelines.flows", "import prefect"]


if __name__ == "__main__":
    for name in sys.argv[1:] or [str(NOTEBOOKS / n) for n in EXPECTED]:
        strip(Path(name))

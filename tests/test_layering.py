"""The layers: features and models never import prefect; only models/registry.py imports mlflow."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pure_packages_import_neither_prefect_nor_mlflow():
    code = (
        "import sys, importlib, pkgutil\n"
        "import features, models\n"
        "for pkg in (features, models):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        if m.name != 'registry':\n"
        "            importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('prefect', 'mlflow'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"pure packages pulled in: {out.stdout.strip()}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_import_rules_hold_file_by_file():
    for path in sorted(ROOT.glob("features/*.py")):
        assert not _imports(path) & {"prefect", "mlflow", "models", "pipelines"}, path
    for path in sorted(ROOT.glob("models/*.py")):
        allowed = {"mlflow"} if path.name == "registry.py" else set()
        assert not (_imports(path) - allowed) & {"prefect", "mlflow", "pipelines"}, path


def test_importing_the_cli_configures_nothing(tmp_path):
    code = "import os, pipelines.cli, pipelines.flows; print(os.environ.get('PREFECT_HOME', ''))"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, check=True
    )
    assert out.stdout.strip() == ""
    assert list(tmp_path.iterdir()) == [] or all(p.name.startswith(".") for p in tmp_path.iterdir())


def test_the_promotion_audit_file_lives_beside_the_tracking_store(tmp_path, monkeypatch):
    """A SQLite store named by MLFLOW_TRACKING_URI keeps its audit file beside it, not in the project's mlruns/;
    a tracking server's audit copy stays in the project's mlruns/."""
    from pipelines.settings import load_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere' / 'mlflow.db'}")
    settings = load_settings()
    assert settings.mlruns == (tmp_path / "elsewhere").resolve()
    assert settings.artifact_location == (tmp_path / "elsewhere" / "artifacts").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.plant.local:5000")
    assert load_settings().mlruns == load_settings().root / "mlruns"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert load_settings().mlruns == load_settings().root / "mlruns"

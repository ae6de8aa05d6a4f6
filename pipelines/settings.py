"""Where wearcast keeps its state, read once when a command or flow starts (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict


def project_root() -> Path:
    """``WEARCAST_HOME`` if set, else the project folder this package lives in, else the working directory."""
    if home := os.environ.get("WEARCAST_HOME"):
        return Path(home).resolve()
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd().resolve()


class Settings(BaseModel):
    """Resolved locations of the MLflow store, the Prefect home and the outputs."""

    model_config = ConfigDict(frozen=True)
    root: Path
    tracking_uri: str
    artifact_location: str | None
    prefect_home: Path
    outputs: Path
    experiment: str = "wearcast"

    @property
    def mlruns(self) -> Path:
        return self.root / "mlruns"


def local_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a local SQLite store (``<db folder>/artifacts``), not in the working directory."""
    if not tracking_uri.startswith("sqlite:///"):
        return None  # a tracking server decides where its artifacts go
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "artifacts").as_uri()


def load_settings(experiment: str = "wearcast") -> Settings:
    """Embedded defaults (SQLite MLflow store in mlruns/, Prefect home in .prefect/), overridden by the environment."""
    root = project_root()
    default_uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", default_uri)
    return Settings(
        root=root,
        tracking_uri=tracking_uri,
        artifact_location=local_artifact_location(tracking_uri),
        prefect_home=Path(os.environ.get("PREFECT_HOME", root / ".prefect")),
        outputs=root / "outputs",
        experiment=experiment,
    )


def prepare_environment(settings: Settings) -> None:
    """Set what Prefect reads when it first loads: its home, and no analytics on an offline machine."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    (settings.root / "mlruns").mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

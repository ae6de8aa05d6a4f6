"""Where wearcast keeps its state, read once when a command or flow starts (never at import)."""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from features.errors import InputError

SCALE_ENV = {
    "workers": "WEARCAST_DASK_WORKERS",
    "address": "WEARCAST_DASK_ADDRESS",
    "partition_machines": "WEARCAST_PARTITION_MACHINES",
    "train_on_dask": "WEARCAST_DASK_TRAIN",
}


def project_root() -> Path:
    """``WEARCAST_HOME`` if set, else the project folder this package lives in, else the working directory."""
    if home := os.environ.get("WEARCAST_HOME"):
        if not Path(home).is_dir():
            raise InputError(
                f"WEARCAST_HOME={home}: not a folder (it holds mlruns/, store/, outputs/ and feedback/); fix: "
                f"create it (mkdir -p {home}) or unset WEARCAST_HOME to use the project folder"
            )
        return Path(home).resolve()
    candidate = Path(__file__).resolve().parents[1]
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd().resolve()


class ScaleSettings(BaseModel):
    """Where the feature step runs: in the flow's process (no workers, no address; the default), or on Dask,
    partition by partition (pipelines/scale.py, docs/scaling.md)."""

    model_config = ConfigDict(frozen=True)
    workers: int = Field(default=0, ge=0)  # local Dask worker processes (0: no local cluster)
    address: str | None = None  # a running Dask scheduler to join, e.g. tcp://10.0.0.5:8786
    partition_machines: int = Field(default=5000, ge=1)  # machines per partition (one task each)
    train_on_dask: bool = False  # the final booster fit with xgboost.dask on the same cluster

    @property
    def enabled(self) -> bool:
        return bool(self.address) or self.workers > 0


def load_scale_settings(**given: Any) -> ScaleSettings:
    """Options given by the caller, else ``WEARCAST_DASK_WORKERS``, ``WEARCAST_DASK_ADDRESS`` and
    ``WEARCAST_PARTITION_MACHINES``, else off (one process)."""
    values: dict[str, Any] = {
        key: os.environ[name] for key, name in SCALE_ENV.items() if os.environ.get(name)
    }
    values |= {key: value for key, value in given.items() if value is not None}
    return ScaleSettings(**values)


class Settings(BaseModel):
    """Resolved locations of the MLflow store, the Prefect home and the outputs."""

    model_config = ConfigDict(frozen=True)
    root: Path
    tracking_uri: str
    artifact_location: str | None
    prefect_home: Path
    outputs: Path
    experiment: str = "wearcast"
    scale: ScaleSettings = ScaleSettings()

    @property
    def mlruns(self) -> Path:
        """Where the promotion audit file goes: beside a local SQLite store (the project's ``mlruns/`` by
        default, another folder when ``MLFLOW_TRACKING_URI`` names one), else the project's ``mlruns/``."""
        if self.tracking_uri.startswith("sqlite:///"):
            return Path(self.tracking_uri.removeprefix("sqlite:///")).resolve().parent
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
        scale=load_scale_settings(),
    )


def check_services(
    settings: Settings, mlflow: bool = True, prefect: bool = True, timeout_s: float = 5.0
) -> None:
    """Fail fast, with the fix, when the MLflow store or the Prefect API that the environment names (and the
    command uses) cannot be used: MLflow's and Prefect's own clients retry for minutes, then print tracebacks."""
    if mlflow:
        _check_tracking(settings.tracking_uri, timeout_s)
    api = os.environ.get("PREFECT_API_URL")
    if prefect and api:
        _require_answer(
            f"{api.rstrip('/')}/health",
            timeout_s,
            f"PREFECT_API_URL={api}: the Prefect API",
            "start it (prefect server start), or unset PREFECT_API_URL to run flows on a local API",
        )


def _check_tracking(uri: str, timeout_s: float) -> None:
    """A local SQLite store must be writable; a tracking server must answer."""
    if uri.startswith(("http://", "https://")):
        _require_answer(
            f"{uri.rstrip('/')}/health",
            timeout_s,
            f"MLFLOW_TRACKING_URI={uri}: the MLflow server",
            "start it (mlflow server ...), or unset MLFLOW_TRACKING_URI to use the project's mlruns/",
        )
    if not uri.startswith("sqlite:///"):
        return
    database = Path(uri.removeprefix("sqlite:///")).resolve()
    try:  # what SQLite needs: the folder, a file of its own there (its journal), the database writable
        database.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=database.parent):
            pass
        if database.exists():
            with database.open("r+b"):
                pass
    except OSError as exc:
        raise InputError(
            f"MLFLOW_TRACKING_URI={uri}: {database} cannot be written ({exc}); fix: point it at a "
            "writable folder, or unset it to use the project's mlruns/"
        ) from None


def _require_answer(url: str, timeout_s: float, what: str, fix: str) -> None:
    """Raise InputError naming ``what`` and ``fix`` unless ``url`` answers an HTTP GET within ``timeout_s``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server is there (an auth or path problem shows in the real call)
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} does not answer at {url} ({exc}); fix: {fix}") from None


def prepare_environment(settings: Settings) -> None:
    """Set what Prefect reads when it first loads: its home, and no analytics on an offline machine."""
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    (settings.root / "mlruns").mkdir(exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

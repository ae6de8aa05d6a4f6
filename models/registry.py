"""The one module that talks to MLflow: tracking runs, the pyfunc bundle, the registry and its champion alias."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

from features.errors import InputError
from models.bundle import RiskModel

CHAMPION = "champion"


class RegistryError(InputError):
    """The registry cannot give what was asked (no champion, unknown version); the message says what to do."""


class RiskModelPyfunc(PythonModel):
    """MLflow pyfunc that returns calibrated failure probabilities (not class labels) from a feature table."""

    def load_context(self, context) -> None:
        self.model: RiskModel = joblib.load(context.artifacts["risk_model"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame({"failure_probability": self.model.predict_proba(model_input)})


@dataclass(frozen=True)
class RegisteredRun:
    run_id: str
    version: str
    experiment_id: str


def connect(tracking_uri: str, experiment: str, artifact_location: str | None) -> str:
    """Point MLflow at the tracking/registry store and return the experiment id (created if missing)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(experiment, artifact_location=artifact_location)


@contextmanager
def _quiet_mlflow():
    """Hide MLflow's advice (pip inference, cloudpickle, input examples) that a wearcast user cannot act on."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def log_training_run(
    model: RiskModel,
    model_name: str,
    experiment_id: str,
    params: dict,
    metrics: dict,
    tags: dict,
    sample: pd.DataFrame,
    files: dict[str, Path] | None = None,
) -> RegisteredRun:
    """Log one training run (params, metrics, data tags, files) and register its pyfunc bundle under ``model_name``."""
    with (
        _quiet_mlflow(),
        mlflow.start_run(experiment_id=experiment_id, tags=tags) as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_dict(
            {"columns": list(model.spec.columns), "spec": model.spec.model_dump(mode="json")},
            "feature_spec.json",
        )
        mlflow.log_dict(
            {"thresholds": model.thresholds, "horizon_h": model.horizon_h, **model.info},
            "model_info.json",
        )
        for name, path in (files or {}).items():
            mlflow.log_artifact(str(path), artifact_path=name)
        log_search_trials(model.info.get("search", []), experiment_id)
        bundle = Path(tmp) / "risk_model.joblib"
        joblib.dump(model, bundle)
        x = model.spec.matrix(sample)
        signature = infer_signature(x, pd.DataFrame({"failure_probability": model.predict_proba(sample)}))
        info = mlflow.pyfunc.log_model(
            name="risk_model",
            python_model=RiskModelPyfunc(),
            artifacts={"risk_model": str(bundle)},
            registered_model_name=model_name,
            signature=signature,
            pip_requirements=pinned_requirements(),
        )
    return RegisteredRun(run.info.run_id, str(info.registered_model_version), experiment_id)


def log_evaluation_run(
    experiment_id: str, run_name: str, params: dict, metrics: dict, tags: dict, files: list[Path]
) -> str:
    """Log a backtest or evaluation (no model) as its own run: parameters, metrics, figures and tables."""
    with _quiet_mlflow(), mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="report")
    return str(run.info.run_id)


def log_search_trials(trials: list[dict], experiment_id: str) -> None:
    """Each hyperparameter trial as a nested run of the training run: its settings and out-of-fold score."""
    for trial in trials:
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"trial {trial['trial']}", nested=True):
            mlflow.log_params({k: v for k, v in trial.items() if k not in ("oof_pr_auc", "rounds")})
            mlflow.log_metrics({"oof_pr_auc": trial["oof_pr_auc"], "rounds": trial["rounds"]})


def pinned_requirements() -> list[str]:
    """The packages the bundle needs to load, at the versions installed here (no slow pip inference)."""
    from importlib.metadata import PackageNotFoundError, version

    names = (
        "mlflow",
        "numpy",
        "pandas",
        "scipy",
        "scikit-learn",
        "xgboost-cpu",
        "joblib",
        "pydantic",
        "pyarrow",
    )
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def champion_version(model_name: str) -> str | None:
    """Version number behind the ``champion`` alias, or None."""
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, CHAMPION).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise  # a store that cannot be read must not look like "no champion"


def no_champion_message(model_name: str) -> str:
    """Why there is no champion and what to do: train first, or promote a version that was registered but not
    promoted (its sanity checks failed)."""
    where = f"model '{model_name}' has no champion in the registry at {mlflow.get_tracking_uri()}"
    try:
        versions = sorted(
            int(v.version) for v in MlflowClient().search_model_versions(f"name='{model_name}'")
        )
    except MlflowException:
        versions = []
    if not versions:
        return f"{where}; fix: run `wearcast train DATA --model-name {model_name}` first, or pass --model VERSION"
    listed, last = ", ".join(map(str, versions[-5:])), versions[-1]
    return (
        f"{where}: version(s) {listed} are registered, none is the champion (a version that fails its sanity "
        "checks is registered but not promoted: its `promotion` tag says why); "
        f'fix: `wearcast promote {last} --reason "..." --force` after checking it, or pass --model {last}'
    )


def load_model(model_name: str, version: str | None = None) -> tuple[RiskModel, str]:
    """Load a registered version (default: the champion) as a RiskModel, with its version number."""
    version = version or champion_version(model_name)
    if version is None:
        raise RegistryError(no_champion_message(model_name))
    try:
        pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    except (MlflowException, OSError) as exc:
        try:
            source = MlflowClient().get_model_version(model_name, version).source
        except MlflowException:
            source = "the registry (no such version)"
        raise RegistryError(
            f"model '{model_name}' version {version} cannot be loaded from {source} "
            f"({getattr(exc, 'message', exc)}): its files are gone or unreadable; fix: restore them, or promote "
            f'another version (`wearcast promote N --reason "..."`) or retrain (`wearcast train DATA`)'
        ) from exc
    return pyfunc.unwrap_python_model().model, str(version)


def set_champion(model_name: str, version: str, audit: dict) -> None:
    """Move the ``champion`` alias to ``version`` and record why on the version (an audit trail in the registry)."""
    client = MlflowClient()
    client.set_registered_model_alias(model_name, CHAMPION, version)
    client.set_model_version_tag(model_name, version, "promotion", json.dumps(audit, default=str))


def tag_version(model_name: str, version: str, key: str, value: str) -> None:
    MlflowClient().set_model_version_tag(model_name, version, key, value)


def check_version(model_name: str, version: str) -> None:
    """Raise RegistryError naming the versions there are when ``version`` of ``model_name`` does not exist."""
    client = MlflowClient()
    try:
        client.get_model_version(model_name, version)
    except MlflowException as exc:
        found = sorted(
            (int(v.version) for v in client.search_model_versions(f"name='{model_name}'")), reverse=True
        )
        known = ", ".join(map(str, found[:10])) or "none"
        raise RegistryError(
            f"model '{model_name}' has no version {version} in {mlflow.get_tracking_uri()} (versions: {known}); "
            "fix: pick one of those"
        ) from exc


def version_exists(model_name: str, version: str) -> bool:
    try:
        MlflowClient().get_model_version(model_name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return False
        raise  # a registry that cannot be read must not look like "deleted"
    return True


def promotion_record(model_name: str, version: str) -> dict:
    """The audit record written when ``version`` was last promoted (empty if none)."""
    tags = MlflowClient().get_model_version(model_name, version).tags
    try:
        return dict(json.loads(tags.get("promotion", "{}")))
    except json.JSONDecodeError:
        return {}

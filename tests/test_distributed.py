"""The final booster fitted with xgboost.dask on a local cluster is the same model as a local fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.build import FeatureConfig
from models.distributed import dask_booster_fitter
from models.train import TrainConfig, train_risk_model


def labelled_rows(machines: int = 40, hours: int = 60, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Rows whose failure label follows two features (and noise in a third)."""
    rng = np.random.default_rng(seed)
    n = machines * hours
    frame = pd.DataFrame(
        {
            "machine_id": np.repeat([f"m{i:02d}" for i in range(machines)], hours),
            "timestamp": np.tile(pd.date_range("2026-01-01", periods=hours, freq="h", tz="UTC"), machines),
            "tel__temperature_bearing__last": rng.normal(60, 5, n),
            "vib__acc__rms": rng.lognormal(0, 0.4, n),
            "tel__noise__last": rng.normal(0, 1, n),
        }
    )
    logit = 0.5 * (frame["tel__temperature_bearing__last"] - 65) + 3 * (frame["vib__acc__rms"] - 1.3)
    labels = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float))
    return frame, labels


@pytest.fixture(scope="module")
def client():
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as c,
        distributed.Client(c) as client,
    ):
        yield client


def test_dask_fit_matches_the_local_fit(client):
    frame, labels = labelled_rows()
    config = TrainConfig(search_trials=0, n_estimators=120, seed=3)
    local = train_risk_model(frame, labels, FeatureConfig(), config)
    on_dask = train_risk_model(
        frame, labels, FeatureConfig(), config, fit_booster=dask_booster_fitter(client)
    )
    fresh, truth = labelled_rows(seed=1)
    p_local, p_dask = local.predict_proba(fresh), on_dask.predict_proba(fresh)
    assert on_dask.info["boosting_rounds"] == local.info["boosting_rounds"]
    assert np.corrcoef(p_local, p_dask)[0, 1] > 0.97
    auc_local, auc_dask = roc_auc_score(truth, p_local), roc_auc_score(truth, p_dask)
    assert auc_dask > 0.75 and abs(auc_dask - auc_local) < 0.02
    # the model learned the signal, not the noise column
    contributions = on_dask.booster.get_score(importance_type="gain")
    assert max(contributions, key=contributions.get) != "tel__noise__last"

"""Real run-to-failure bearings (FEMTO PRONOSTIA, ../shared/data): features see wear, the model transfers.

A reduced version of ``benchmarks/pronostia.py``: three bearings, one per operating condition (the first
of each), instead of nine. The AUC floors are sanity floors (0.5 is chance), not performance claims; the
benchmark reports the real numbers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data
from sklearn.metrics import roc_auc_score

from features.build import KEYS, FeatureConfig, build_features
from features.dataset import load_dataset
from models.labels import failure_within, next_failure
from models.train import TrainConfig, train_risk_model

pytestmark = pytest.mark.slow

SUBSET = ("Bearing1_1", "Bearing2_1", "Bearing3_1")  # condition 1, 2, 3: 1800, 1650, 1500 rpm
HORIZON_H = 0.25
LATE_MIN = 10.0  # late life: the last 10 minutes before failure
EARLY_LIFE = 0.5  # early life: the first half of the run


def subset(dataset, machines):
    """The dataset restricted to some machines (waveform offsets still index the shared sample array)."""

    def keep(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["machine_id"].isin(machines)].reset_index(drop=True)

    return replace(
        dataset,
        machines=keep(dataset.machines),
        telemetry=keep(dataset.telemetry),
        waveforms=replace(dataset.waveforms, meta=keep(dataset.waveforms.meta)),
        events=keep(dataset.events),
    )


@pytest.fixture(scope="module")
def bearings():
    """Subset dataset and its feature table, built without failure events (those are the labels)."""
    dataset = subset(load_dataset(shared_data("femto-pronostia")), SUBSET)
    inputs = replace(dataset, events=dataset.events[dataset.events["kind"] != "failure"])
    frame = build_features(inputs, config=FeatureConfig()).frame.sort_values(KEYS).reset_index(drop=True)
    return dataset, frame


def max_channel_rms(frame: pd.DataFrame) -> pd.Series:
    columns = [
        c for c in frame.columns if c.startswith("vib__") and len(c.split("__")) == 3 and c.endswith("__rms")
    ]
    assert len(columns) == 2, columns
    return frame[columns].max(axis=1)


def test_every_subset_bearing_has_features_at_every_snapshot(bearings):
    dataset, frame = bearings
    assert sorted(frame["machine_id"].unique()) == sorted(SUBSET)
    assert len(frame) == dataset.waveforms.meta[KEYS].drop_duplicates().shape[0]
    assert max_channel_rms(frame).notna().all()


def test_rms_at_the_end_of_life_is_far_above_the_start(bearings):
    _, frame = bearings
    rms = max_channel_rms(frame)
    for machine, rows in rms.groupby(frame["machine_id"]):
        start, end = rows.iloc[:30].median(), rows.iloc[-5:].median()
        assert end > 2.5 * start, f"{machine}: RMS {start:.3f} g at the start, {end:.3f} g at the end"


def late_versus_early(frame: pd.DataFrame, failure: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row: is it late life (last minutes), and is it either late or early life (rows compared)."""
    lead_min = (failure - frame["timestamp"]).dt.total_seconds().to_numpy() / 60.0
    start = frame.groupby("machine_id")["timestamp"].transform("min")
    life = (frame["timestamp"] - start) / (failure - start)
    late = lead_min <= LATE_MIN
    return late, late | (life <= EARLY_LIFE).to_numpy()


def test_model_ranks_late_life_above_early_life_on_an_unseen_bearing(bearings):
    dataset, frame = bearings
    labels = failure_within(frame, dataset.events, dataset.latest_reading(), HORIZON_H)
    late, compared = late_versus_early(frame, next_failure(frame, dataset.events))
    machines = frame["machine_id"].to_numpy()
    aucs = {}
    for machine in SUBSET:
        held = machines == machine
        model = train_risk_model(
            frame.loc[~held].reset_index(drop=True),
            labels[~held].reset_index(drop=True),
            FeatureConfig(),
            TrainConfig(horizon_h=HORIZON_H, folds=2, nthread=1),
        )
        probability = model.predict_proba(frame.loc[held])
        rows = compared[held]
        aucs[machine] = roc_auc_score(late[held][rows], probability[rows])
    assert all(auc > 0.5 for auc in aucs.values()), aucs
    assert np.mean(list(aucs.values())) > 0.65, aucs

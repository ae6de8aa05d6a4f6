"""Model behaviour: risk rises when a bearing-fault signature grows; ids do not matter."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from features.bearings import defect_orders
from features.build import FeatureConfig, build_features, latest_as_of
from features.dataset import load_dataset
from models.labels import failure_within
from models.train import TrainConfig, train_risk_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from features.simulator import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("behaviour") / "fleet"
    simulate(out, SimulationConfig(machines=80, days=40, seed=11, snapshot_samples=2048))
    dataset = load_dataset(out)
    table = build_features(dataset, config=FeatureConfig())
    labels = failure_within(table.frame, dataset.events, dataset.latest_reading(), 168.0)
    model = train_risk_model(table.frame, labels, FeatureConfig(), TrainConfig(folds=3))
    return dataset, model


def healthiest_machine(dataset, model) -> str:
    frame = build_features(dataset, latest_as_of(dataset), model.spec.config).frame
    return frame.loc[int(np.argmin(model.predict_proba(frame))), "machine_id"]


def with_outer_race_fault(dataset, machine: str, amplitude_g: float):
    """Copy of the dataset where the machine's latest snapshot carries an outer-race impulse train."""
    meta = dataset.waveforms.meta
    row = meta[meta["machine_id"] == machine].index[-1]
    fs, n = float(meta.loc[row, "sample_rate_hz"]), int(meta.loc[row, "n_samples"])
    geometry = dataset.machines.set_index("machine_id").loc[machine]
    orders = defect_orders(
        geometry["bearing_n_balls"],
        geometry["bearing_ball_diameter_mm"],
        geometry["bearing_pitch_diameter_mm"],
        geometry["bearing_contact_angle_deg"],
    )
    bpfo_hz = float(orders["bpfo"]) * float(meta.loc[row, "speed_rpm"]) / 60.0
    t = np.arange(n) / fs
    since = np.mod(t, 1.0 / bpfo_hz)
    ringing = amplitude_g * np.exp(-since * 800.0) * np.sin(2 * np.pi * 3000.0 * since)
    samples = dataset.waveforms.samples.copy()
    offset = int(meta.loc[row, "offset"])
    samples[offset : offset + n] += ringing.astype(np.float32)
    return replace(dataset, waveforms=replace(dataset.waveforms, samples=samples))


def test_risk_rises_as_an_outer_race_fault_grows(trained):
    dataset, model = trained
    machine = healthiest_machine(dataset, model)
    risks = []
    for amplitude in (0.0, 0.5, 2.0, 6.0):
        faulty = with_outer_race_fault(dataset, machine, amplitude)
        frame = build_features(faulty, latest_as_of(faulty), model.spec.config).frame
        risks.append(float(model.predict_proba(frame[frame["machine_id"] == machine])[0]))
    assert risks[-1] > risks[0] + 0.05, risks
    # never falls by more than a point of probability (trees wobble a little once the risk saturates)
    assert all(b >= a - 0.01 for a, b in pairwise(risks)), risks


def test_risk_does_not_depend_on_machine_ids(trained):
    dataset, model = trained
    rename = {m: f"renamed-{i:04d}" for i, m in enumerate(reversed(dataset.machine_ids))}
    renamed = replace(
        dataset,
        machines=dataset.machines.assign(machine_id=dataset.machines["machine_id"].map(rename)),
        telemetry=dataset.telemetry.assign(machine_id=dataset.telemetry["machine_id"].map(rename)),
        waveforms=replace(
            dataset.waveforms,
            meta=dataset.waveforms.meta.assign(machine_id=dataset.waveforms.meta["machine_id"].map(rename)),
        ),
        events=dataset.events.assign(machine_id=dataset.events["machine_id"].map(rename)),
    )
    before = build_features(dataset, latest_as_of(dataset), model.spec.config).frame
    after = build_features(renamed, latest_as_of(renamed), model.spec.config).frame
    p_before = pd.Series(model.predict_proba(before), index=before["machine_id"].map(rename))
    p_after = pd.Series(model.predict_proba(after), index=after["machine_id"])
    pd.testing.assert_series_equal(p_before.sort_index(), p_after.sort_index(), check_names=False)


def test_a_lost_sensor_shows_as_missing_in_the_flagged_history_not_an_error(trained):
    """The report's history of a flagged machine when the data lacks a sensor the model uses: its features
    come back as NaN columns (every spec feature is asked for, so the lost one is among them)."""
    from models.risk import flagged_history

    dataset, model = trained
    lost = "temperature_bearing"
    machine = healthiest_machine(dataset, model)
    risk = pd.DataFrame(
        {"machine_id": [machine], "flagged": [True], "as_of": [dataset.latest_reading().max()]}
    )

    def build(rows: pd.DataFrame) -> pd.DataFrame:
        frame = build_features(dataset, rows, model.spec.config).frame
        return frame.drop(columns=[c for c in frame if c.startswith(f"tel__{lost}__")])

    history, drivers = flagged_history(model, risk, build, weeks=1, how_many=len(model.spec.columns))
    missing = [c for c in model.spec.columns if c.startswith(f"tel__{lost}__")]
    assert missing and set(missing) <= set(drivers[machine])
    assert history[missing].isna().all().all()
    assert history["failure_probability"].between(0, 1).all() and len(history) == 8


def test_too_few_labels_names_the_counts_and_the_horizon_fix_that_applies():
    from models.train import too_few_labels_message

    short_lives = too_few_labels_message(701, 701, 168.0)  # every row within a week of a failure
    assert (
        "of 701 labelled rows (after the hold-out split), 701 precede a failure within 168 h" in short_lives
    )
    assert "fix: a shorter horizon (--horizon-h)" in short_lives
    nothing_labelled = too_few_labels_message(0, 0, 168.0)  # 3 days of data, no failure, a week's horizon
    assert "no row could be labelled" in nothing_labelled and "a shorter horizon" in nothing_labelled
    no_failures = too_few_labels_message(0, 3634, 168.0)
    assert "0 precede a failure" in no_failures and "or a longer horizon (--horizon-h)" in no_failures

"""What train_risk_model and the risk list do with tables a notebook user builds by hand: a clear InputError
naming the problem and the fix, or a working model, never a raw library traceback or a silently wrong model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import FeatureConfig, FeatureSpec
from features.errors import InputError
from models.evaluate import calibration_table, evaluate, expected_calibration_error
from models.train import TrainConfig, train_risk_model

T0 = pd.Timestamp("2026-01-01", tz="UTC")
FAST = TrainConfig(search_trials=1, folds=3, n_estimators=30)


def table(machines: int = 8, rows: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Daily rows of ``machines`` machines; the last 10 rows of every other machine precede a failure and show
    in feature ``vib__a__rms``."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "machine_id": np.repeat([f"M{i}" for i in range(machines)], rows),
            "timestamp": np.tile(pd.date_range(T0, periods=rows, freq="D"), machines),
        }
    )
    failing = (frame["machine_id"].str[1:].astype(int) % 2 == 0) & (
        frame.groupby("machine_id").cumcount() >= rows - 10
    )
    y = failing.astype(float)
    frame["vib__a__rms"] = rng.normal(size=len(frame)) + 3 * y
    frame["tel__t__last"] = rng.normal(size=len(frame))
    return frame, pd.Series(y.to_numpy(), name="label")


def test_a_copy_of_the_labels_in_the_table_is_refused_as_a_leak():
    frame, y = table()
    with pytest.raises(InputError, match=r"\['label'\] hold the labels"):
        train_risk_model(frame.assign(label=y), y, FeatureConfig(), FAST)


def test_a_column_that_is_not_numeric_is_named():
    frame, y = table()
    with pytest.raises(InputError, match=r"\['site'\] are not numeric"):
        train_risk_model(frame.assign(site="north"), y, FeatureConfig(), FAST)


def test_failures_of_a_single_machine_cannot_train_a_model():
    frame, y = table()
    y = y.where(frame["machine_id"].eq("M0").to_numpy(), 0.0)
    with pytest.raises(InputError, match=r"belongs to one machine \(M0\)"):
        train_risk_model(frame, y, FeatureConfig(), FAST)


def test_no_usable_feature_and_mismatched_labels_are_named():
    frame, y = table()
    with pytest.raises(InputError, match="none of the 2 feature columns"):
        train_risk_model(frame.assign(vib__a__rms=np.nan, tel__t__last=np.nan), y, FeatureConfig(), FAST)
    with pytest.raises(InputError, match="labels has 315 rows and the feature table 320"):
        train_risk_model(frame, y.iloc[:315], FeatureConfig(), FAST)


def test_features_without_a_value_in_the_labelled_rows_are_left_out_of_the_spec():
    """A feature NaN everywhere, and one with values only in unlabelled rows, are not in the model's spec: the
    model was never fitted on them, so scoring must not rebuild them."""
    frame, y = table()
    y = y.copy()
    y.iloc[:40] = np.nan  # M0's rows are unlabelled (the tail of the data, say)
    frame["vib__b__kurtosis"] = np.where(y.isna(), 3.0, np.nan)
    frame["tel__never__last"] = np.nan
    model = train_risk_model(frame, y, FeatureConfig(), FAST)
    assert model.spec.columns == ("vib__a__rms", "tel__t__last")
    assert list(model.spec.matrix(frame).columns) == ["vib__a__rms", "tel__t__last"]


def test_infinite_or_float32_overflowing_features_are_missing_in_training_and_scoring():
    frame, y = table()
    frame.loc[[3, 50], "tel__t__last"] = [np.inf, 1e40]
    model = train_risk_model(frame, y, FeatureConfig(), FAST)
    matrix = model.spec.matrix(frame)
    assert matrix.loc[[3, 50], "tel__t__last"].isna().all() and np.isfinite(model.predict_proba(frame)).all()
    spec = FeatureSpec(columns=("x",))
    assert spec.matrix(pd.DataFrame({"x": [-np.inf, 2.0]}))["x"].isna().tolist() == [True, False]


def test_a_risk_list_needs_one_row_per_machine():
    from models.risk import build_risk_list

    frame, y = table()
    model = train_risk_model(frame, y, FeatureConfig(), FAST)
    machines = pd.DataFrame({"machine_id": frame["machine_id"].unique()})
    with pytest.raises(InputError, match="8 machine\\(s\\) have more"):
        build_risk_list(model, frame, machines, "m", "1")
    with pytest.raises(InputError, match="no rows to score"):
        build_risk_list(model, frame.iloc[:0], machines, "m", "1")
    latest = frame.groupby("machine_id").tail(1)
    assert len(build_risk_list(model, latest, machines, "m", "1")) == 8


def test_calibration_leaves_out_rows_without_a_probability_and_brier_needs_no_second_class():
    y, p = np.array([0.0, 1.0, 1.0]), np.array([0.05, 0.95, np.nan])
    assert calibration_table(y, p)["rows"].tolist() == [1, 1]
    assert expected_calibration_error(y, p) == pytest.approx(0.05)
    rows = pd.DataFrame({"machine_id": ["A", "A"], "timestamp": [T0, T0 + pd.Timedelta(days=1)]})
    events = pd.DataFrame(columns=["machine_id", "timestamp", "kind"])
    metrics = evaluate(rows, np.array([0.0, 0.0]), np.array([0.1, 0.3]), 0.5, events, 24.0)
    assert metrics["brier"] == pytest.approx((0.01 + 0.09) / 2) and np.isnan(metrics["roc_auc"])


def test_a_constant_feature_is_no_leak_when_every_labelled_row_has_the_same_label():
    frame, y = table()
    with pytest.raises(InputError, match="at least 2 labelled rows of each kind"):
        train_risk_model(frame.assign(tel__t__slope__24h=0.0), y * 0, FeatureConfig(), FAST)

"""The assembled feature table: names, as-of rows, trimming, the spec."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.build import FeatureConfig, FeatureSpec, build_features, latest_as_of
from features.dataset import load_dataset
from features.describe import describe, driver_phrase


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from features.simulator import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("build") / "fleet"
    simulate(out, SimulationConfig(machines=12, days=20, seed=5, snapshot_samples=2048))
    return load_dataset(out)


def test_one_row_per_snapshot_with_named_columns(fleet):
    table = build_features(fleet)
    assert len(table.frame) == fleet.waveforms.meta[["machine_id", "timestamp"]].drop_duplicates().shape[0]
    for name in (
        "vib__acc_horizontal__rms",
        "vib__acc_horizontal__envelope__bpfo_amp",
        "vib__acc_horizontal__band_energy__500_1000hz",
        "vib__acc_horizontal__velocity_rms_mm_s",
        "tel__temperature_bearing__slope__24h",
        "tel__temperature_bearing__rise_over_ambient",
        "vib__acc_horizontal__envelope__bpfo_amp__ratio_to_baseline",
    ):
        assert name in table.frame, name
        assert describe(name).description, name


def test_trimmed_history_gives_exactly_the_features_of_the_full_history(fleet):
    as_of = latest_as_of(fleet)
    trimmed = build_features(fleet, as_of, FeatureConfig()).frame
    full = build_features(fleet, as_of, FeatureConfig(), trim=False).frame
    pd.testing.assert_frame_equal(trimmed, full, rtol=1e-6)


def test_spec_rebuilds_the_same_columns_in_order(fleet):
    frame = build_features(fleet).frame
    spec = FeatureSpec(columns=("tel__temperature_bearing__last", "vib__acc_horizontal__rms", "not_there"))
    matrix = spec.matrix(frame)
    assert list(matrix.columns) == list(spec.columns) and matrix["not_there"].isna().all()
    assert spec.missing_from(frame) == ["not_there"]
    assert matrix.dtypes.unique().tolist() == [np.float32]


def test_driver_phrases_read_as_a_crew_would():
    assert (
        driver_phrase("tel__temperature_bearing__rise_over_ambient", 14.2)
        == "bearing temperature 14 °C above ambient"
    )
    phrase = driver_phrase("vib__acc_horizontal__envelope__bpfo_amp__ratio_to_baseline", 6.04)
    assert phrase.endswith("6.0x its healthy level") and "outer" in phrase.lower()


def test_baselines_are_per_operating_regime():
    from features.build import add_baseline_ratios

    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    regimes = ["fast", "slow"] * 10
    snapshots = pd.DataFrame(
        {
            "machine_id": "A",
            "timestamp": [t0 + pd.Timedelta(hours=i) for i in range(20)],
            "regime": regimes,
            "rms": [
                2.0 if r == "fast" else 1.0 for r in regimes
            ],  # healthy: louder only because it runs faster
        }
    )
    out = add_baseline_ratios(snapshots, baseline_snapshots=6)
    assert out["rms__ratio_to_baseline"][:6].isna().all()  # no ratio until the baseline period is complete
    np.testing.assert_allclose(out["rms__ratio_to_baseline"][6:], 1.0)
    assert "regime" not in out
    blind = add_baseline_ratios(snapshots.drop(columns="regime"), baseline_snapshots=6)
    assert blind["rms__ratio_to_baseline"].max() > 1.3  # without regimes the fast runs look worse


def test_iso_zone_feature_is_built(fleet):
    frame = build_features(fleet).frame
    zone = frame["vib__acc_horizontal__iso_zone"].dropna()
    assert set(zone.unique()) <= {1.0, 2.0, 3.0, 4.0} and len(zone) > 0


def test_every_feature_has_a_unit_and_a_description(fleet):
    """Every column, the optional vibration slopes included; a unit for all but the dimensionless ones."""
    dimensionless = ("crest_factor", "kurtosis", "skewness", "shape_factor", "impulse_factor", "hf_ratio")
    columns = build_features(fleet, config=FeatureConfig(vibration_trend_h=48)).feature_columns
    assert any("__slope__48h" in c and c.startswith("vib__") for c in columns)
    for name in columns:
        info = describe(name)
        assert info.description and info.description != name, name
        assert info.unit or name.endswith(dimensionless), name


def test_channels_and_sensors_whose_names_hold_double_underscores_are_described(tmp_path):
    """Feature names are <kind>__<signal>__<feature>; a channel named 'bearing1__x' must not break the words a
    crew reads (describe raised KeyError, which would stop a risk list)."""
    from conftest import make_tiny

    from features.build import explained_row_by_row

    root = make_tiny(tmp_path / "odd")
    waves = pd.read_parquet(root / "waveforms" / "part-0.parquet").assign(channel="bearing1__x")
    waves.to_parquet(root / "waveforms" / "part-0.parquet")
    machines = pd.read_parquet(root / "machines.parquet").drop(
        columns="bearing_n_balls"
    )  # envelope lines NaN
    machines.to_parquet(root / "machines.parquet")
    tel = pd.read_parquet(root / "telemetry" / "part-0.parquet").rename(columns={"speed_rpm": "line__speed"})
    tel.to_parquet(root / "telemetry" / "part-0.parquet")
    table = build_features(load_dataset(root))
    for name in table.feature_columns:
        info = describe(name)
        assert info.description and info.description != name, name
    assert describe("vib__bearing1__x__rms").description.endswith("(bearing1 x)")
    assert driver_phrase("vib__bearing1__x__rms__ratio_to_baseline", 2.0).endswith(
        "(bearing1 x) 2.0x its healthy level"
    )
    assert "line speed" in describe("tel__line__speed__mean__24h").description
    assert any(c.startswith("vib__bearing1__x__envelope__") for c in explained_row_by_row(table))


def test_telemetry_only_data_can_be_scored():
    from conftest import shared_data

    dataset = load_dataset(shared_data("cmapss-fd001/test"))
    frame = build_features(dataset, latest_as_of(dataset)).frame
    assert len(frame) == 100 and frame["tel__temperature_hpc_outlet__last"].notna().all()


def test_a_machine_without_waveforms_keeps_its_telemetry_rows_beside_machines_with_them(tmp_path):
    from conftest import make_tiny

    root = make_tiny(tmp_path / "mixed")
    dataset = load_dataset(root)
    waveless = dataset.waveforms.meta["machine_id"].iloc[0]
    meta = dataset.waveforms.meta
    kept = meta[meta["machine_id"] != waveless].reset_index(drop=True)
    dataset = replace(dataset, waveforms=replace(dataset.waveforms, meta=kept))
    frame = build_features(dataset).frame
    mine = frame[frame["machine_id"] == waveless]
    readings = dataset.telemetry[dataset.telemetry["machine_id"] == waveless]
    assert list(mine["timestamp"]) == sorted(readings["timestamp"])
    assert mine["tel__temperature_bearing__last"].notna().all()
    assert mine["vib__acc_horizontal__rms"].isna().all()
    others = frame[frame["machine_id"] != waveless]
    snapshots = dataset.waveforms.meta[["machine_id", "timestamp"]].drop_duplicates()
    assert len(others) == len(snapshots)


def test_channels_stamped_apart_meet_in_one_row(tmp_path):
    from conftest import make_tiny, write_waveforms

    root = make_tiny(tmp_path / "two")
    meta = load_dataset(root).waveforms.meta
    t = np.arange(4096) / 10240.0
    rows = [
        {
            "machine_id": m,
            "timestamp": ts + pd.Timedelta(seconds=1),
            "channel": "acc_vertical",
            "values": np.sin(2 * np.pi * 40 * t),
        }
        for m, ts in meta[["machine_id", "timestamp"]].itertuples(index=False)
    ]
    write_waveforms(root / "waveforms" / "vertical.parquet", rows)
    dataset = load_dataset(root)
    frame = build_features(dataset, latest_as_of(dataset)).frame
    assert frame["vib__acc_horizontal__rms"].notna().all() and frame["vib__acc_vertical__rms"].notna().all()


def test_telemetry_only_data_gets_rise_over_fleet_descriptions():
    from conftest import shared_data

    dataset = load_dataset(shared_data("cmapss-fd001/test"))
    for name in build_features(dataset, latest_as_of(dataset)).feature_columns:
        assert describe(name).description != name, name


def test_a_spec_pickled_as_data_comes_back_equal():
    import pickle

    from models.bundle import PlattCalibrator, RiskModel

    spec = FeatureSpec(config=FeatureConfig(windows_h=(12,)), columns=("a", "b"))
    model = RiskModel(booster=None, spec=spec, calibrator=PlattCalibrator(), thresholds={}, horizon_h=24.0)
    again = pickle.loads(pickle.dumps(model))
    assert again.spec == spec and isinstance(again.spec, FeatureSpec)


def test_features_at_t_ignore_everything_after_t(fleet):
    """As-of correctness of the whole table: the readings and events after t change nothing at t."""
    from dataclasses import replace

    t = (
        fleet.telemetry["timestamp"].min()
        + (fleet.telemetry["timestamp"].max() - fleet.telemetry["timestamp"].min()) / 2
    )
    meta = fleet.waveforms.meta
    past = replace(
        fleet,
        telemetry=fleet.telemetry[fleet.telemetry["timestamp"] <= t].reset_index(drop=True),
        waveforms=replace(fleet.waveforms, meta=meta[meta["timestamp"] <= t].reset_index(drop=True)),
        events=fleet.events[fleet.events["timestamp"] < t],
    )
    as_of = latest_as_of(past)
    config = FeatureConfig(vibration_trend_h=168)
    now = build_features(past, as_of, config, trim=False).frame
    with_future = build_features(fleet, as_of, config, trim=False).frame
    pd.testing.assert_frame_equal(now, with_future, rtol=1e-6)
    assert any(c.endswith("__slope__168h") and c.startswith("vib__") for c in now)


def test_as_of_times_in_any_unit_or_naive_utc_give_the_same_table(tmp_path):
    from conftest import make_tiny

    from features.build import build_features, latest_as_of
    from features.dataset import load_dataset

    dataset = load_dataset(make_tiny(tmp_path / "d"))
    as_of = latest_as_of(dataset)
    reference = build_features(dataset, as_of).frame
    for variant in (
        as_of.astype({"timestamp": "datetime64[ns, UTC]"}),
        as_of.assign(timestamp=as_of["timestamp"].dt.tz_convert(None)),
    ):
        pd.testing.assert_frame_equal(build_features(dataset, variant).frame, reference)


def test_as_of_rows_with_numeric_machine_ids_or_none_at_all_give_a_table(tmp_path):
    from conftest import make_tiny, write_waveforms

    from features.build import build_features, latest_as_of
    from features.dataset import load_dataset

    root = make_tiny(tmp_path / "d")
    rows = [{"machine_id": "7", "timestamp": pd.Timestamp("2026-01-01", tz="UTC"), "values": np.ones(4096)}]
    rows[0]["values"][::7] = -1.0
    write_waveforms(root / "waveforms" / "numbered.parquet", rows)
    dataset = load_dataset(root)
    as_of = latest_as_of(dataset)
    reference = build_features(dataset, as_of[as_of["machine_id"] == "7"]).frame
    numeric = as_of[as_of["machine_id"] == "7"].assign(machine_id=7)  # ids typed as numbers in a notebook
    pd.testing.assert_frame_equal(build_features(dataset, numeric).frame, reference)
    assert reference["vib__acc_horizontal__rms"].notna().all()
    empty = build_features(dataset, pd.DataFrame({"machine_id": [], "timestamp": []})).frame
    assert empty.empty and list(empty.columns[:2]) == ["machine_id", "timestamp"]


def test_trimming_telemetry_only_data_changes_no_feature():
    from conftest import shared_data

    dataset = load_dataset(shared_data("cmapss-fd001/test"))
    as_of = latest_as_of(dataset)
    trimmed = build_features(dataset, as_of, trim=True).frame
    pd.testing.assert_frame_equal(trimmed, build_features(dataset, as_of, trim=False).frame)


def test_features_empty_for_every_machine_are_noted_with_their_reason(tmp_path):
    """Four snapshots per machine cannot complete a baseline of ten, so every ratio is NaN, and says why; the
    features with values get no such note."""
    from conftest import make_tiny

    from features.build import EVERY_MACHINE, empty_feature_notes

    config = FeatureConfig()
    frame = build_features(load_dataset(make_tiny(tmp_path / "tiny")), config=config).frame
    notes = empty_feature_notes(frame, config)
    ratios = [c for c in frame.columns if c.endswith("__ratio_to_baseline")]
    assert ratios and set(ratios) <= set(notes["feature"])
    empty = {c for c in frame.columns if c not in ("machine_id", "timestamp") and frame[c].isna().all()}
    # every row with a bearing temperature rises over ambient: the empty rise over the fleet needs no note
    assert set(notes["feature"]) == empty - {"tel__temperature_bearing__rise_over_fleet"}
    assert "tel__temperature_bearing__rise_over_fleet" in empty
    assert (notes["machine_id"] == EVERY_MACHINE).all() and notes["timestamp"].isna().all()
    ratio_reason = notes.set_index("feature").loc[ratios[0], "reason"]
    assert "10 earlier snapshots" in ratio_reason and "baseline_snapshots" in ratio_reason
    assert empty_feature_notes(frame, config, noted=set(ratios))["feature"].isin(ratios).sum() == 0
    assert empty_feature_notes(frame.dropna(axis=1, how="all"), config).empty


def test_a_rise_over_a_fleet_too_small_says_so(tmp_path):
    """Two pumps without an ambient sensor: the fleet median needs three machines of the type."""
    from conftest import make_tiny

    from features.build import empty_feature_notes

    root = make_tiny(tmp_path / "two", machines=2)
    tel = pd.read_parquet(root / "telemetry" / "part-0.parquet").drop(columns="temperature_ambient")
    tel.to_parquet(root / "telemetry" / "part-0.parquet")
    frame = build_features(load_dataset(root)).frame
    assert frame["tel__temperature_bearing__last"].notna().all()
    notes = empty_feature_notes(frame, FeatureConfig()).set_index("feature")
    reason = notes.loc["tel__temperature_bearing__rise_over_fleet", "reason"]
    assert "at least 3 machines of the same machine_type" in reason


def test_a_fixed_envelope_band_in_the_feature_config_reaches_the_vibration_features(tmp_path):
    from conftest import make_tiny

    dataset = load_dataset(make_tiny(tmp_path / "tiny"))  # 10,240 Hz: Nyquist 5,120 Hz
    automatic = build_features(dataset).frame
    fixed = build_features(dataset, config=FeatureConfig(envelope_band_hz=(1000.0, 2000.0))).frame
    above = build_features(dataset, config=FeatureConfig(envelope_band_hz=(6000.0, 7000.0))).frame
    column = "vib__acc_horizontal__envelope__rms"
    assert automatic[column].notna().all() and fixed[column].notna().all()
    assert not np.allclose(automatic[column], fixed[column])
    assert above[column].isna().all()
    with pytest.raises(ValidationError):
        FeatureConfig(envelope_band_hz=(2000.0, 1000.0))


def test_features_explained_per_snapshot_get_no_second_note(tmp_path):
    """Without bearing geometry, every envelope-line feature is NaN and each snapshot's note says why: the
    every-machine notes leave those columns to them. A table with no rows gets no note at all."""
    from conftest import make_tiny

    from features.build import empty_feature_notes, explained_row_by_row

    root = make_tiny(tmp_path / "tiny")
    machines = pd.read_parquet(root / "machines.parquet")
    machines.drop(columns=[c for c in machines if c.startswith("bearing_")]).to_parquet(
        root / "machines.parquet"
    )
    table = build_features(load_dataset(root), config=FeatureConfig())
    explained = explained_row_by_row(table)
    assert explained and all("__envelope__" in c or "__order_" in c for c in explained)
    assert "no bearing geometry" in table.notes["reason"].iloc[0]
    # the speed is known: the note names the envelope's defect lines, not the order features it computed
    geometry_only = table.notes[table.notes["reason"] == "no bearing geometry"]
    assert len(geometry_only) and geometry_only["feature"].str.endswith("__envelope__* (defect lines)").all()
    order = [c for c in table.frame if "__order_1x" in c and "__ratio" not in c]
    assert order and table.frame[order].notna().any().all()
    notes = empty_feature_notes(table.frame, FeatureConfig(), noted=explained)
    assert not set(notes["feature"]) & explained
    assert empty_feature_notes(table.frame.iloc[:0], FeatureConfig()).empty


def test_missing_model_features_are_named_outside_a_flow_too():
    """``check_features`` (the score flow's guard) called directly, as a benchmark does: a warning in the module's
    log, not a missing-Prefect-context error; most features missing is an input error."""
    from types import SimpleNamespace

    from features.build import FeatureSpec
    from features.errors import InputError
    from pipelines.flows import check_features

    model = SimpleNamespace(spec=FeatureSpec(config=FeatureConfig(), columns=("a", "b", "c")))
    frame = pd.DataFrame(
        {"machine_id": ["m"], "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")], "a": [1.0], "b": [2.0]}
    )
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]  # Prefect's logging set-up replaces caplog's
    logger = logging.getLogger("pipelines.flows")
    logger.addHandler(handler)
    try:
        assert check_features(model, frame, "wearcast", "3") == ["c"]
    finally:
        logger.removeHandler(handler)
    text = " ".join(r.getMessage() for r in records)
    assert "cannot provide 1 of the 3 features" in text and "(c)" in text
    with pytest.raises(InputError, match="cannot provide 2 of them"):
        check_features(model, frame[["machine_id", "timestamp", "a"]], "wearcast", "3")


@pytest.mark.parametrize(
    "settings_",
    [
        {"windows_h": (0,)},
        {"windows_h": (24, 24)},
        {"telemetry_max_age_h": float("inf")},
        {"bands_hz": ((5, 5),)},
    ],
)
def test_feature_config_rejects_settings_that_cannot_make_columns(settings_):
    with pytest.raises(ValidationError):
        FeatureConfig(**settings_)


def test_shaft_speed_comes_from_the_snapshot_else_earlier_telemetry_else_the_rated_speed(tmp_path):
    """M00: its first snapshot states 1200 rpm (telemetry says 700 then: the snapshot wins); the next, at 12 h,
    has telemetry 900 rpm at 10 h and 600 rpm at 13 h (later: not used); later snapshots have no reading within
    the 6 h max age, so the rated 1500 rpm. M01 has no speed anywhere: its order features are NaN and noted.
    The waveform is a 25 Hz sine of amplitude 1, so only a speed of 1500 rpm puts the 1x order on it."""
    from conftest import make_tiny, write_waveforms

    from features.build import shaft_speed_hz

    root = make_tiny(tmp_path / "speeds")
    tel = pd.read_parquet(root / "telemetry" / "part-0.parquet")
    hour = (tel["timestamp"] - tel["timestamp"].min()) / pd.Timedelta(hours=1)
    mine, other = tel["machine_id"] == "M00", tel["machine_id"] == "M01"
    tel.loc[mine | other, "speed_rpm"] = np.nan
    for at, rpm in ((0, 700.0), (10, 900.0), (13, 600.0)):
        tel.loc[mine & (hour == at), "speed_rpm"] = rpm
    tel.to_parquet(root / "telemetry" / "part-0.parquet")
    machines = pd.read_parquet(root / "machines.parquet")
    machines.loc[machines["machine_id"] == "M01", "rated_speed_rpm"] = np.nan
    machines.to_parquet(root / "machines.parquet")
    waveforms = pq_rows(root / "waveforms" / "part-0.parquet")
    for row in waveforms:
        row["speed_rpm"] = (
            1200.0 if row["machine_id"] == "M00" and row["timestamp"] == tel["timestamp"].min() else None
        )
    write_waveforms(root / "waveforms" / "part-0.parquet", waveforms)

    dataset = load_dataset(root)
    meta = dataset.waveforms.meta
    rpm = pd.Series(shaft_speed_hz(dataset, max_age_h=6.0) * 60.0, index=meta.index)
    first = meta["timestamp"].min()
    at = (meta["timestamp"] - first) / pd.Timedelta(hours=1)
    m00 = rpm[meta["machine_id"] == "M00"].set_axis(at[meta["machine_id"] == "M00"])
    assert m00.to_dict() == {0.0: 1200.0, 12.0: 900.0, 24.0: 1500.0, 36.0: 1500.0}
    assert rpm[meta["machine_id"] == "M01"].isna().all()
    assert (rpm[meta["machine_id"] == "M02"] == 1500.0).all()

    table = build_features(dataset, config=FeatureConfig(telemetry_max_age_h=6.0))
    frame = table.frame.assign(hour=(table.frame["timestamp"] - first) / pd.Timedelta(hours=1))
    one_x = frame.set_index(["machine_id", "hour"])["vib__acc_horizontal__order_1x_amp"]
    assert one_x[("M00", 0.0)] < 0.1 and one_x[("M00", 12.0)] < 0.1  # 20 Hz and 15 Hz: no line there
    np.testing.assert_allclose(one_x[("M00", 24.0)], 1.0, rtol=0.05)  # rated 25 Hz: the sine
    assert one_x.loc["M01"].isna().all()
    notes = table.notes[table.notes["machine_id"] == "M01"]
    assert len(notes) == 4 and notes["reason"].str.contains("no shaft speed").all()
    assert notes["feature"].str.contains("order_").all()


def pq_rows(path) -> list[dict]:
    """The rows of a waveform file written by ``write_waveforms``, as dicts of numpy arrays."""
    frame = pd.read_parquet(path)
    return [{**row, "values": np.asarray(row["values"], np.float32)} for row in frame.to_dict("records")]


def test_operating_regimes_band_speed_in_10_percent_steps_and_load_in_50_percent_steps(tmp_path):
    from conftest import make_tiny

    from features.build import snapshot_regimes

    root = make_tiny(tmp_path / "regimes", machines=1, hours=48)  # snapshots at 0, 12, 24 and 36 h
    tel = pd.read_parquet(root / "telemetry" / "part-0.parquet")
    hour = (tel["timestamp"] - tel["timestamp"].min()) / pd.Timedelta(hours=1)
    tel["load_pct"] = np.select([hour < 12, hour < 24, hour < 30], [40.0, 10.0, 60.0], np.nan)
    tel.to_parquet(root / "telemetry" / "part-0.parquet")
    dataset = load_dataset(root)
    shaft_hz = np.array([30.0, 31.5, 36.0, np.nan])  # 1.05x the first: same band; 1.2x: the next but one
    regime = snapshot_regimes(dataset, shaft_hz, FeatureConfig(telemetry_max_age_h=6.0))
    speed, load = zip(*(r.split("|") for r in regime), strict=True)
    assert speed[0] == speed[1] != speed[2] and int(speed[2]) - int(speed[0]) == 2 and speed[3] == "?"
    assert load[0] == load[1] != load[2]  # 40 % and 10 %: one band; 60 %: the next
    assert load[3] == "?"  # the last load reading, at 29 h, is older than the 6 h max age


def test_a_machine_alternating_between_two_speeds_keeps_a_ratio_of_one(tmp_path):
    """Healthy, 44 % louder at 1800 rpm than at 1500 rpm: ratios to the baseline of the same regime stay 1."""
    from conftest import make_tiny, write_waveforms

    root = make_tiny(tmp_path / "alternating", machines=1, hours=120)  # 10 snapshots, every 12 h
    rows = pq_rows(root / "waveforms" / "part-0.parquet")
    t = np.arange(4096) / 10240.0
    rng = np.random.default_rng(3)
    for i, row in enumerate(rows):
        rpm = 1800.0 if i % 2 else 1500.0
        gain = (rpm / 1500.0) ** 2
        row["speed_rpm"] = rpm
        row["values"] = gain * (np.sin(2 * np.pi * rpm / 60 * t) + rng.normal(0, 0.05, t.size))
    write_waveforms(root / "waveforms" / "part-0.parquet", rows)
    config = FeatureConfig(baseline_snapshots=4)
    frame = build_features(load_dataset(root), config=config).frame.sort_values("timestamp")
    ratio = frame["vib__acc_horizontal__rms__ratio_to_baseline"].to_numpy()
    assert np.isnan(ratio[:4]).all()
    np.testing.assert_allclose(ratio[4:], 1.0, rtol=0.03)
    one_x = frame["vib__acc_horizontal__order_1x_amp__ratio_to_baseline"].to_numpy()
    np.testing.assert_allclose(one_x[4:], 1.0, rtol=0.03)


def test_progress_counts_every_snapshot_up_to_the_total(fleet):
    calls: list[tuple[int, int]] = []
    build_features(fleet, progress=lambda done, total: calls.append((done, total)))
    total = len(fleet.waveforms.meta)
    assert calls and calls[-1] == (total, total)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert {t for _, t in calls} == {total}


def test_the_iso_zone_follows_each_machines_vibration_class(tmp_path):
    """The same 5 mm/s vibration on three machines: zone D for class I, C for the default class II, B for class
    IV (ISO 10816-1 Annex B boundaries, classes spelled 'I' and '4' in the register)."""
    from conftest import make_tiny, write_waveforms

    from features.vibration import STANDARD_GRAVITY_M_S2

    root = make_tiny(tmp_path / "classes")
    machines = pd.read_parquet(root / "machines.parquet")
    machines["vibration_class"] = ["I", "4", None]
    machines.to_parquet(root / "machines.parquet")
    rows = pq_rows(root / "waveforms" / "part-0.parquet")
    t = np.arange(4096) / 10240.0
    amplitude_g = (
        5.0 * np.sqrt(2) * 2 * np.pi * 25.0 / (STANDARD_GRAVITY_M_S2 * 1000.0)
    )  # 5 mm/s RMS at 25 Hz
    for row in rows:
        row["values"] = amplitude_g * np.sin(2 * np.pi * 25.0 * t)
    write_waveforms(root / "waveforms" / "part-0.parquet", rows)
    frame = build_features(load_dataset(root)).frame
    velocity = frame.groupby("machine_id")["vib__acc_horizontal__velocity_rms_mm_s"].median()
    np.testing.assert_allclose(velocity, 5.0, rtol=0.01)
    zones = frame.groupby("machine_id")["vib__acc_horizontal__iso_zone"].agg(set)
    assert zones.to_dict() == {"M00": {4.0}, "M01": {2.0}, "M02": {3.0}}


def test_vibration_slopes_read_a_linear_rise_per_hour(tmp_path):
    """RMS rising by 0.01 g / sqrt(2) an hour (a sine whose amplitude grows 0.01 g an hour): the trend over 48 h
    is that slope once 3 snapshots are inside the window, NaN before."""
    from conftest import make_tiny, write_waveforms

    root = make_tiny(tmp_path / "rising", machines=1, hours=120)  # 10 snapshots, every 12 h
    rows = pq_rows(root / "waveforms" / "part-0.parquet")
    t = np.arange(4096) / 10240.0
    first = rows[0]["timestamp"]
    for row in rows:
        hours = (row["timestamp"] - first) / pd.Timedelta(hours=1)
        row["values"] = (1.0 + 0.01 * hours) * np.sin(2 * np.pi * 25.0 * t)
    write_waveforms(root / "waveforms" / "part-0.parquet", rows)
    frame = build_features(load_dataset(root), config=FeatureConfig(vibration_trend_h=48)).frame
    slope = frame.sort_values("timestamp")["vib__acc_horizontal__rms__slope__48h"].to_numpy()
    assert np.isnan(slope[:2]).all()  # 1 and 2 snapshots in the window
    np.testing.assert_allclose(slope[2:], 0.01 / np.sqrt(2), rtol=1e-4)
    assert (
        "vib__acc_horizontal__rms__slope__48h" not in build_features(load_dataset(root)).frame
    )  # off by default
    chosen = FeatureConfig(vibration_trend_h=48, vibration_trend_features=("band_energy__10_500hz", "peak"))
    frame = build_features(load_dataset(root), config=chosen).frame.sort_values("timestamp")
    slopes = sorted(c for c in frame.columns if "__slope__" in c and c.startswith("vib__"))
    assert slopes == [
        "vib__acc_horizontal__band_energy__10_500hz__slope__48h",
        "vib__acc_horizontal__peak__slope__48h",
    ]
    np.testing.assert_allclose(frame[slopes[1]].to_numpy()[2:], 0.01, rtol=1e-3)  # the amplitude, per hour
    with pytest.raises(ValidationError, match=r"\['rsm'\] name no vibration feature"):
        FeatureConfig(vibration_trend_h=48, vibration_trend_features=("rsm",))
    with pytest.raises(ValidationError, match="name no vibration feature"):  # a zone number has no trend
        FeatureConfig(vibration_trend_h=48, vibration_trend_features=("iso_zone",))
    none = FeatureConfig(vibration_trend_h=48, vibration_trend_features=())
    assert not [c for c in build_features(load_dataset(root), config=none).frame if "__slope__48h" in c]

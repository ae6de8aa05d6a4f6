"""Tests of the simulated fleet: determinism, vibration/thermal physics, contract layout, config errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt

from features import simulator
from features.simulator import SimulationConfig, SimulationSummary, simulate

# seed 7 at this size holds late outer/inner-race failures, lubrication failures and all sensor faults
FLEET = SimulationConfig(machines=60, days=40, seed=7)
TINY = SimulationConfig(machines=6, days=4, seed=3, inbox_days=1, snapshot_samples=1024)
UTC_US = pa.timestamp("us", tz="UTC")
DAY = pd.Timedelta(days=1)
SCHEMAS = {
    "machines.parquet": {
        "machine_id": pa.string(),
        "machine_type": pa.string(),
        "site": pa.string(),
        "installed_at": UTC_US,
        "rated_speed_rpm": pa.float64(),
        "bearing_n_balls": pa.int64(),
        "bearing_ball_diameter_mm": pa.float64(),
        "bearing_pitch_diameter_mm": pa.float64(),
        "bearing_contact_angle_deg": pa.float64(),
        "vibration_class": pa.string(),
    },
    "telemetry/part-0000.parquet": {
        "machine_id": pa.string(),
        "timestamp": UTC_US,
        "temperature_bearing": pa.float64(),
        "temperature_ambient": pa.float64(),
        "speed_rpm": pa.float64(),
        "load_pct": pa.float64(),
    },
    "waveforms/part-0000.parquet": {
        "machine_id": pa.string(),
        "timestamp": UTC_US,
        "channel": pa.string(),
        "sample_rate_hz": pa.float64(),
        "speed_rpm": pa.float64(),
        "values": pa.list_(pa.float32()),
    },
    "events.parquet": {
        "machine_id": pa.string(),
        "timestamp": UTC_US,
        "kind": pa.string(),
        "component": pa.string(),
    },
    "truth.parquet": {
        "machine_id": pa.string(),
        "mode": pa.string(),
        "onset": UTC_US,
        "end": UTC_US,
        "ended_by": pa.string(),
    },
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulationSummary, dict[str, pd.DataFrame]]:
    """The FLEET simulation and its tables (waveforms with per-snapshot RMS in g)."""
    out = tmp_path_factory.mktemp("fleet") / "out"
    summary = simulate(out, FLEET)
    tables = {
        name: pd.read_parquet(out / name) for name in ("machines.parquet", "events.parquet", "truth.parquet")
    }
    tables["telemetry"] = pd.read_parquet(out / "telemetry")
    waves = pq.read_table(out / "waveforms").to_pandas()
    waves["rms"] = [float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))) for v in waves["values"]]
    tables["waveforms"] = waves
    return summary, tables


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet file under out, keyed by relative path."""
    return {str(p.relative_to(out)): pd.read_parquet(p) for p in sorted(out.rglob("*.parquet"))}


def _envelope_peak_hz(values: np.ndarray, fs: float) -> tuple[float, float]:
    """Frequency of the envelope-spectrum peak (10 Hz-1 kHz) after a 1.5-4.9 kHz band-pass, and bin width."""
    sos = butter(4, [1500.0, min(4900.0, 0.48 * fs)], btype="bandpass", fs=fs, output="sos")
    envelope = np.abs(hilbert(sosfiltfilt(sos, values.astype(np.float64))))
    spectrum = np.abs(np.fft.rfft((envelope - envelope.mean()) * np.hanning(envelope.size)))
    freqs = np.fft.rfftfreq(envelope.size, 1.0 / fs)
    band = (freqs > 10.0) & (freqs < 1000.0)
    return float(freqs[band][np.argmax(spectrum[band])]), float(freqs[1])


def _defect_hz(machine: pd.Series, speed_rpm: float, mode: str) -> float:
    """BPFO or BPFI (Hz) from the bearing geometry and shaft speed."""
    ratio = machine.bearing_ball_diameter_mm / machine.bearing_pitch_diameter_mm
    ratio *= np.cos(np.radians(machine.bearing_contact_angle_deg))
    sign = -1.0 if mode == "bearing_outer" else 1.0
    return machine.bearing_n_balls / 2 * speed_rpm / 60 * (1 + sign * ratio)


def _late_snapshots(tables: dict[str, pd.DataFrame], mode: str) -> list[tuple[pd.Series, pd.Series]]:
    """(episode, last snapshot before failure) for failed episodes of mode, snapshot late (>= 70 %)."""
    truth, waves = tables["truth.parquet"], tables["waveforms"]
    found = []
    for _, ep in truth[(truth["mode"] == mode) & (truth.ended_by == "failure")].iterrows():
        snaps = waves[(waves.machine_id == ep.machine_id) & (waves.timestamp < ep.end)]
        if len(snaps) and (snaps.timestamp.iloc[-1] - ep.onset) / (ep.end - ep.onset) >= 0.7:
            found.append((ep, snaps.iloc[-1]))
    return found


def _rise(telemetry: pd.DataFrame, machine_id: str, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Median bearing temperature over ambient (°C) of a machine in [start, end)."""
    rows = telemetry[
        (telemetry.machine_id == machine_id) & (telemetry.timestamp >= start) & (telemetry.timestamp < end)
    ]
    return float((rows.temperature_bearing - rows.temperature_ambient).median())


def test_same_seed_gives_identical_tables_and_bytes(tmp_path: Path) -> None:
    simulate(tmp_path / "a", TINY)
    simulate(tmp_path / "b", TINY)
    a, b = _tables(tmp_path / "a"), _tables(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name])
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    simulate(tmp_path / "a", TINY)
    simulate(tmp_path / "b", replace(TINY, seed=4))
    a, b = pd.read_parquet(tmp_path / "a" / "telemetry"), pd.read_parquet(tmp_path / "b" / "telemetry")
    assert not a.equals(b)


@pytest.mark.parametrize("mode", ["bearing_outer", "bearing_inner"])
def test_late_bearing_fault_envelope_spectrum_peaks_at_defect_frequency(fleet, mode: str) -> None:
    _, tables = fleet
    machines = tables["machines.parquet"].set_index("machine_id")
    late = _late_snapshots(tables, mode)
    assert late, f"fixture seed no longer yields a late {mode} failure"
    for ep, snap in late:
        peak, bin_hz = _envelope_peak_hz(snap["values"], snap.sample_rate_hz)
        expected = _defect_hz(machines.loc[ep.machine_id], snap.speed_rpm, mode)
        assert abs(peak - expected) <= 2 * bin_hz, (ep.machine_id, peak, expected)


def test_late_bearing_fault_snapshot_is_louder_than_healthy_machines(fleet) -> None:
    _, tables = fleet
    truth, waves = tables["truth.parquet"], tables["waveforms"]
    faulty = truth[~truth["mode"].str.startswith("sensor")].machine_id.unique()
    healthy_rms = waves[~waves.machine_id.isin(faulty)].groupby("machine_id").rms.median()
    for mode in ("bearing_outer", "bearing_inner"):
        for _, snap in _late_snapshots(tables, mode):
            assert snap.rms > 2 * healthy_rms.median()
            assert snap.rms > healthy_rms.max()


def test_bearing_runs_hotter_near_failure_than_at_onset(fleet) -> None:
    _, tables = fleet
    truth, telemetry = tables["truth.parquet"], tables["telemetry"]
    start = pd.Timestamp(FLEET.start, tz="UTC")
    failed = truth[
        truth["mode"].str.startswith("bearing") & (truth.ended_by == "failure") & (truth.onset > start)
    ]
    assert len(failed) >= 3
    for _, ep in failed.iterrows():
        at_onset = _rise(telemetry, ep.machine_id, ep.onset, ep.onset + DAY)
        near_failure = _rise(telemetry, ep.machine_id, ep.end - DAY, ep.end)
        assert near_failure > at_onset + 5.0, (ep.machine_id, at_onset, near_failure)


def test_lubrication_fault_heats_before_it_vibrates(fleet) -> None:
    _, tables = fleet
    truth, telemetry, waves = tables["truth.parquet"], tables["telemetry"], tables["waveforms"]
    start = pd.Timestamp(FLEET.start, tz="UTC")
    lub = truth[
        (truth["mode"] == "lubrication") & (truth.ended_by == "failure") & (truth.onset > start + 2 * DAY)
    ]
    assert len(lub) >= 1
    for _, ep in lub.iterrows():
        rms = waves[waves.machine_id == ep.machine_id].set_index("timestamp").rms
        early = ep.onset + 0.4 * (ep.end - ep.onset)  # vibration has not started growing yet
        baseline_rise = _rise(telemetry, ep.machine_id, ep.onset - DAY, ep.onset)
        assert _rise(telemetry, ep.machine_id, early - DAY / 2, early + DAY / 2) > baseline_rise + 3.0
        baseline_rms = rms[: ep.onset].iloc[-2:].mean()
        assert rms[ep.onset : early].max() < 1.2 * baseline_rms
        assert rms[: ep.end].iloc[-1] > 2.0 * baseline_rms


def test_failed_machine_stops_reporting_during_downtime(fleet) -> None:
    _, tables = fleet
    events, telemetry, waves = tables["events.parquet"], tables["telemetry"], tables["waveforms"]
    failures = events[events.kind == "failure"]
    assert len(failures) >= 5
    for _, ev in failures.iterrows():
        for table in (telemetry, waves):
            rows = table[(table.machine_id == ev.machine_id) & (table.timestamp >= ev.timestamp)]
            assert rows.empty or rows.timestamp.min() >= ev.timestamp + DAY


def test_truth_matches_events_and_summary(fleet) -> None:
    summary, tables = fleet
    truth, events = tables["truth.parquet"], tables["events.parquet"]
    failed = truth[truth.ended_by == "failure"].sort_values(["machine_id", "end"])
    failure_events = events[events.kind == "failure"].sort_values(["machine_id", "timestamp"])
    assert failed.machine_id.tolist() == failure_events.machine_id.tolist()
    assert (failed.end.to_numpy() == failure_events.timestamp.to_numpy()).all()
    assert set(truth["mode"]) <= {"bearing_outer", "bearing_inner", "bearing_ball", "imbalance", "lubrication",
                                  "sensor_stuck", "sensor_spikes", "sensor_dropout"}  # fmt: skip
    assert truth[truth.ended_by == "none"].end.isna().sum() == summary.faulty_at_end > 0
    assert summary.failures == len(failure_events)
    assert summary.telemetry_rows == len(tables["telemetry"])
    assert summary.waveform_rows == len(tables["waveforms"])


def test_sensor_faults_show_in_telemetry(fleet) -> None:
    _, tables = fleet
    truth, telemetry = tables["truth.parquet"], tables["telemetry"]
    sensor = truth[truth["mode"].str.startswith("sensor")]
    assert set(sensor["mode"]) == {"sensor_stuck", "sensor_spikes", "sensor_dropout"}
    for _, ep in sensor.iterrows():
        rows = telemetry[(telemetry.machine_id == ep.machine_id) & (telemetry.timestamp >= ep.onset)]
        inside = rows[rows.timestamp < ep.end].temperature_bearing
        if ep["mode"] == "sensor_stuck":
            assert len(inside) > 1 and inside.nunique() == 1
        elif ep["mode"] == "sensor_spikes":
            assert inside.max() > 200.0 and inside.median() < 100.0
        else:
            assert inside.empty and len(rows) > 0


def test_maintenance_during_a_fault_repairs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator, "MAINTENANCE_RATE_PER_DAY", 0.15)
    simulate(tmp_path, SimulationConfig(machines=30, days=20, seed=1, snapshot_samples=1024))
    truth, events = pd.read_parquet(tmp_path / "truth.parquet"), pd.read_parquet(tmp_path / "events.parquet")
    repaired = truth[truth.ended_by == "maintenance"]
    assert len(repaired) >= 2
    maintenance = events[events.kind == "maintenance"].set_index(["machine_id", "timestamp"]).component
    component = {"bearing_outer": "bearing", "bearing_inner": "bearing", "bearing_ball": "bearing",
                 "imbalance": "rotor", "lubrication": "lubrication"}  # fmt: skip
    for _, ep in repaired.iterrows():
        assert maintenance[(ep.machine_id, ep.end)] == component[ep["mode"]]


def test_contract_layout_and_dtypes(fleet) -> None:
    summary, tables = fleet
    for name, columns in SCHEMAS.items():
        schema = pq.read_schema(summary.out / name)
        assert dict(zip(schema.names, schema.types, strict=True)) == columns, name
    waves = tables["waveforms"]
    assert (waves["values"].map(len) == FLEET.snapshot_samples).all()
    assert (waves.channel == "acc_horizontal").all() and (waves.sample_rate_hz == FLEET.sample_rate_hz).all()
    assert tables["machines.parquet"].machine_id.tolist() == [f"M{i:04d}" for i in range(1, 61)]
    assert sorted(p.name for p in summary.out.rglob("truth*")) == ["truth.parquet"]
    assert summary.bytes_written == sum(p.stat().st_size for p in summary.out.rglob("*") if p.is_file())


def test_inbox_days_split_last_days_into_dated_batches(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    summary = simulate(tmp_path / "out", SimulationConfig(machines=6, days=5, inbox_days=2, snapshot_samples=1024),
                       progress=lambda done, total: calls.append((done, total)))  # fmt: skip
    inbox = tmp_path / "out" / "inbox"
    assert sorted(p.name for p in inbox.iterdir()) == ["2026-01-04", "2026-01-05"]
    assert summary.inbox_batches == sorted(inbox.iterdir())
    assert calls == [(d, 5) for d in range(1, 6)]
    first_inbox_day = pd.Timestamp("2026-01-04", tz="UTC")
    for folder in ("telemetry", "waveforms"):
        assert pd.read_parquet(tmp_path / "out" / folder).timestamp.max() < first_inbox_day
    for batch in summary.inbox_batches:
        day = pd.Timestamp(batch.name, tz="UTC")
        assert {"machines.parquet", "telemetry", "waveforms"} <= {p.name for p in batch.iterdir()}
        for folder in ("telemetry", "waveforms"):
            ts = pd.read_parquet(batch / folder).timestamp
            assert len(ts) and ts.min() >= day and ts.max() < day + DAY
    assert not list(inbox.rglob("truth*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"machines": 0}, "machines"),
        ({"days": 1}, "days"),
        ({"days": 5, "inbox_days": 5}, "inbox_days"),
        ({"start": "2026-13-01"}, "start"),
        ({"start": "yesterday"}, "start"),
    ],
)
def test_bad_config_raises_value_error(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(tmp_path / "out", SimulationConfig(**change))
    assert not (tmp_path / "out").exists()


def test_refuses_non_empty_output_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="choose another folder or delete it"):
        simulate(tmp_path, TINY)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]

"""Shared fixtures: tiny contract datasets written in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_waveforms(path: Path, rows: list[dict]) -> None:
    """Write waveform rows (``values`` as numpy arrays) as a contract Parquet file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "machine_id": [r["machine_id"] for r in rows],
            "timestamp": pa.array([r["timestamp"] for r in rows], pa.timestamp("us", tz="UTC")),
            "channel": [r.get("channel", "acc_horizontal") for r in rows],
            "sample_rate_hz": [float(r.get("sample_rate_hz", 10240.0)) for r in rows],
            "values": pa.array([np.asarray(r["values"], np.float32) for r in rows], pa.list_(pa.float32())),
        }
    )
    if any("speed_rpm" in r for r in rows):  # the snapshot's own shaft speed, where a row gives one
        table = table.append_column("speed_rpm", pa.array([r.get("speed_rpm") for r in rows], pa.float64()))
    pq.write_table(table, path)


def make_tiny(root: Path, machines: int = 3, hours: int = 48) -> Path:
    """A small valid dataset: hourly telemetry, a snapshot every 12 h, one failure event."""
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"M{i:02d}" for i in range(machines)]
    pd.DataFrame(
        {
            "machine_id": ids,
            "machine_type": "pump",
            "site": "A",
            "rated_speed_rpm": 1500.0,
            "bearing_n_balls": 9,
            "bearing_ball_diameter_mm": 7.94,
            "bearing_pitch_diameter_mm": 39.04,
            "bearing_contact_angle_deg": 0.0,
        }
    ).to_parquet(root / "machines.parquet")
    stamps = pd.date_range("2026-01-01", periods=hours, freq="h", tz="UTC")
    tel = pd.DataFrame([(m, t) for m in ids for t in stamps], columns=["machine_id", "timestamp"])
    rng = np.random.default_rng(0)
    tel["temperature_bearing"] = 40 + rng.normal(0, 0.5, len(tel))
    tel["temperature_ambient"] = 20 + rng.normal(0, 0.5, len(tel))
    tel["speed_rpm"] = 1500.0
    (root / "telemetry").mkdir()
    tel.to_parquet(root / "telemetry" / "part-0.parquet")
    t = np.arange(4096) / 10240.0
    rows = [
        {"machine_id": m, "timestamp": s, "values": np.sin(2 * np.pi * 25 * t) + rng.normal(0, 0.1, t.size)}
        for m in ids
        for s in stamps[::12]
    ]
    write_waveforms(root / "waveforms" / "part-0.parquet", rows)
    pd.DataFrame(
        {
            "machine_id": [ids[0]],
            "timestamp": [stamps[-1] + pd.Timedelta(hours=5)],
            "kind": ["failure"],
            "component": ["bearing"],
        }
    ).to_parquet(root / "events.parquet")
    return root


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return make_tiny(tmp_path / "tiny")


def shared_data(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.fail(f"{path} is missing: the real-data tests need ../shared/data beside the repository")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis draws the same examples on every run, so CI results repeat (HYPOTHESIS_PROFILE=explore
    draws new ones)."""
    import os

    from hypothesis import settings

    settings.register_profile("repeatable", derandomize=True, deadline=None)
    settings.register_profile("explore", deadline=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

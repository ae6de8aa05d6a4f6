"""The synthetic vibration batch the speed benchmarks share: a PRONOSTIA-like bearing at 25.6 kHz."""

from __future__ import annotations

import numpy as np

from features.bearings import defect_orders

FS_HZ = 25600.0
SHAFT_HZ = 30.0
GEOMETRY = {"n_balls": 13, "ball_diameter_mm": 3.5, "pitch_diameter_mm": 25.6}  # PRONOSTIA test bearing


def bearing_orders() -> dict[str, float]:
    """Defect orders (per shaft revolution) of the benchmark bearing."""
    return {k: float(v) for k, v in defect_orders(**GEOMETRY).items()}


def synthetic_batch(n_rows: int, n_samples: int, seed: int) -> np.ndarray:
    """Float32 snapshots in g: noise + 1x/2x shaft + outer-race impacts on a 5 kHz resonance (every 3rd row)."""
    rng = np.random.default_rng(seed)
    t = (np.arange(n_samples) / FS_HZ).astype(np.float32)
    since = np.mod(t, 1.0 / (bearing_orders()["bpfo"] * SHAFT_HZ))
    impacts = (np.exp(-since * 900.0) * np.sin(2 * np.pi * 5000.0 * since)).astype(np.float32)
    shaft = 0.2 * np.sin(2 * np.pi * SHAFT_HZ * t) + 0.05 * np.sin(4 * np.pi * SHAFT_HZ * t)
    values = rng.standard_normal((n_rows, n_samples), dtype=np.float32)
    values *= 0.3
    values += shaft.astype(np.float32)
    values[::3] += impacts
    return values

"""Hold-out splits that cannot leak: the latest period (purged by the horizon) or unseen machines."""

from __future__ import annotations

import numpy as np
import pandas as pd


def time_holdout(rows: pd.DataFrame, test_fraction: float, purge_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Train on rows before the split time minus ``purge_h`` hours, test on rows at or after it."""
    t = rows["timestamp"]
    start, end = t.min(), t.max()
    split = start + (end - start) * (1.0 - test_fraction)
    train = (t < split - pd.Timedelta(hours=purge_h)).to_numpy()
    test = (t >= split).to_numpy()
    return np.flatnonzero(train), np.flatnonzero(test)


def machine_holdout(rows: pd.DataFrame, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Test on a random set of machines never seen in training."""
    machines = np.array(sorted(rows["machine_id"].unique()))
    rng = np.random.default_rng(seed)
    n_test = max(1, round(len(machines) * test_fraction))
    test_machines = set(rng.choice(machines, size=n_test, replace=False))
    test = rows["machine_id"].isin(test_machines).to_numpy()
    return np.flatnonzero(~test), np.flatnonzero(test)

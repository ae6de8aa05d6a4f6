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


def labelled_holdout(
    frame: pd.DataFrame,
    labels: pd.Series,
    holdout: str,
    test_fraction: float,
    horizon_h: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the labelled training and hold-out rows: by time (purged by the horizon) or by machine."""
    if holdout == "machines":
        train, test = machine_holdout(frame, test_fraction, seed)
    else:
        train, test = time_holdout(frame, test_fraction, horizon_h)
    known = labels.notna().to_numpy()
    return train[known[train]], test[known[test]]

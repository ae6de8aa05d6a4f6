"""Do vibration trend slopes help on run-to-failure bearings? Leave one bearing out, with and without them.

Usage: ``python benchmarks/trend_slopes_ablation.py DATA_DIR [--trend-h 168] [--horizon-h 0.25]``

For every machine of a run-to-failure folder (PRONOSTIA layout; no names are used): train on the others with
``FeatureConfig()`` (slopes off, the default) and with ``FeatureConfig(vibration_trend_h=H)``, and report the ROC AUC
with which the held-out machine's last 10 minutes are ranked above the first half of its life. This is the
measurement behind the default in ``features/build.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.build import KEYS, FeatureConfig, build_features
from features.dataset import load_dataset
from models.labels import failure_within, next_failure
from models.train import TrainConfig, train_risk_model

LATE_MIN, EARLY_LIFE = 10.0, 0.5


def late_versus_early(frame: pd.DataFrame, failure: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row: is it late life (last minutes), and is it late or early life (the rows compared)."""
    lead_min = (failure - frame["timestamp"]).dt.total_seconds().to_numpy() / 60.0
    start = frame.groupby("machine_id")["timestamp"].transform("min")
    life = ((frame["timestamp"] - start) / (failure - start)).to_numpy()
    late = lead_min <= LATE_MIN
    return late, late | (life <= EARLY_LIFE)


def leave_one_out(dataset, frame: pd.DataFrame, config: FeatureConfig, horizon_h: float) -> dict[str, float]:
    """ROC AUC of late over early life for each held-out machine."""
    labels = failure_within(frame, dataset.events, dataset.latest_reading(), horizon_h)
    late, compared = late_versus_early(frame, next_failure(frame, dataset.events))
    machines = frame["machine_id"].to_numpy()
    aucs = {}
    for machine in sorted(set(machines)):
        held = machines == machine
        rows = compared & held
        if late[rows].all() or not late[rows].any():
            continue  # a run too short to have both early and late life
        folds = min(4, len(set(machines)) - 1)
        model = train_risk_model(
            frame.loc[~held].reset_index(drop=True),
            labels[~held].reset_index(drop=True),
            config,
            TrainConfig(horizon_h=horizon_h, folds=folds, nthread=1),
        )
        probability = model.predict_proba(frame.loc[held])
        aucs[machine] = roc_auc_score(late[held][compared[held]], probability[compared[held]])
    return aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--trend-h", type=int, default=168)
    parser.add_argument("--horizon-h", type=float, default=0.25)
    args = parser.parse_args()
    dataset = load_dataset(args.data_dir)
    inputs = replace(
        dataset, events=dataset.events[dataset.events["kind"] != "failure"]
    )  # failures are labels
    results = {}
    for name, config in (
        ("without slopes", FeatureConfig()),
        (f"with {args.trend_h} h slopes", FeatureConfig(vibration_trend_h=args.trend_h)),
    ):
        frame = build_features(inputs, config=config).frame.sort_values(KEYS).reset_index(drop=True)
        results[name] = leave_one_out(dataset, frame, config, args.horizon_h)
    table = pd.DataFrame(results)
    print(table.round(3).to_string())
    means = {k: float(np.mean(list(v.values()))) for k, v in results.items()}
    print(
        "trend slopes, leave one machine out, ROC AUC late vs early life: "
        + ", ".join(f"{k} {v:.2f}" for k, v in means.items())
        + f" ({len(table)} machines)"
    )


if __name__ == "__main__":
    main()

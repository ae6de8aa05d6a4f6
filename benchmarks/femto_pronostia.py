"""Leave-one-bearing-out benchmark on run-to-failure bearings (FEMTO PRONOSTIA layout), against an RMS rule.

Usage: ``python benchmarks/femto_pronostia.py DATA_DIR [--horizon-h 1.0] [--signals all|vibration]``

``DATA_DIR`` is a dataset in the equipment data contract v1 where every machine is run to failure (its failure
event is its last snapshot). Nothing here names a bearing or is tuned to one folder.

Protocol, per machine M (leave one bearing out):

* features: ``build_features`` with its default configuration at every snapshot time. Failure events are
  held back from the feature builder: they are the labels here (the builder only uses events strictly before
  t, so this is a second guard, not a fix).
* label: "fails within ``--horizon-h`` hours" (``failure_within``). Default 1 h: the runs last from about 40 min
  to 8 h, so 1 h is long enough to act on in an accelerated test, yet leaves most runs a healthy part of
  negatives (a run shorter than the horizon has positives only, and its ROC AUC is undefined).
* model: ``train_risk_model`` on every other machine (``folds`` capped at their number), then
  ``predict_proba`` on M; alert threshold = the model's ``thresholds['high']`` (chosen on out-of-fold scores
  of the training machines only).
* baseline, same rows and rules: RMS threshold. Score = max over channels of RMS over the median RMS of the
  machine's own first ``--baseline-snapshots`` snapshots (as of each row: earlier rows use the snapshots seen
  so far); alert when the score exceeds ``--rms-k``.
* sustained alert: ``--persist`` consecutive snapshots over the threshold; it is raised at the last of them.
  Lead time = failure time minus the first snapshot of the last horizon at which a sustained alert is on
  (missed: no alert in the last horizon, counted as 0 min in the median). False alerts = sustained-alert
  episodes that start before the last horizon. ROC AUC and PR AUC rank the machine's own snapshots.

Prints a per-machine table, saves it as CSV (default ``benchmarks/results/femto_pronostia.csv``) and ends with
one headline line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from features.build import KEYS, FeatureConfig, build_features
from features.dataset import Dataset, load_dataset
from models.labels import failure_within, next_failure
from models.train import TrainConfig, train_risk_model

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "femto_pronostia.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data_dir", type=Path, help="run-to-failure dataset folder (equipment data contract v1)"
    )
    parser.add_argument(
        "--horizon-h", type=float, default=1.0, help="label: failure within this many hours (default 1)"
    )
    parser.add_argument(
        "--persist", type=int, default=3, help="consecutive snapshots over threshold for an alert"
    )
    parser.add_argument(
        "--rms-k", type=float, default=3.0, help="baseline: alert when RMS > k x own baseline"
    )
    parser.add_argument(
        "--baseline-snapshots",
        type=int,
        default=30,
        help="baseline: snapshots in the machine's own RMS median",
    )
    parser.add_argument(
        "--signals",
        choices=("all", "vibration"),
        default="all",
        help="features the model may use: all (as the product does) or vibration only",
    )
    parser.add_argument("--folds", type=int, default=4, help="out-of-fold calibration folds (capped)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--nthread", type=int, default=1, help="XGBoost threads (1 is fastest on 2 busy cores)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV of the per-machine table")
    return parser.parse_args(argv)


def features_without_failures(dataset: Dataset, signals: str) -> pd.DataFrame:
    """Feature table at every snapshot time, built without failure events (they are the labels)."""
    inputs = dataclasses.replace(dataset, events=dataset.events[dataset.events["kind"] != "failure"])
    frame = build_features(inputs, config=FeatureConfig()).frame
    if signals == "vibration":
        frame = frame[[*KEYS, *(c for c in frame.columns if c.startswith("vib__"))]]
    return frame.sort_values(KEYS).reset_index(drop=True)


def rms_columns(frame: pd.DataFrame) -> list[str]:
    """The overall RMS column of each vibration channel (``vib__<channel>__rms``)."""
    return [
        c for c in frame.columns if c.startswith("vib__") and len(c.split("__")) == 3 and c.endswith("__rms")
    ]


def rms_ratio(frame: pd.DataFrame, baseline_snapshots: int) -> np.ndarray:
    """Baseline score: max over channels of RMS / median RMS of the machine's first snapshots (as of each row)."""
    columns = rms_columns(frame)
    if not columns:
        raise SystemExit("no vibration RMS column: the RMS baseline needs waveforms")
    early = frame[columns].where(frame.groupby("machine_id").cumcount() < baseline_snapshots)
    baseline = early.groupby(frame["machine_id"]).expanding().median().reset_index(level=0, drop=True)
    ratio = frame[columns] / baseline.sort_index().where(lambda b: b > 0)
    return ratio.max(axis=1).to_numpy(dtype=float)


def sustained(above: np.ndarray, persist: int) -> np.ndarray:
    """True where the last ``persist`` snapshots (this one included) are all over the threshold."""
    run = np.zeros(len(above), dtype=int)
    count = 0
    for i, flag in enumerate(above):
        count = count + 1 if flag else 0
        run[i] = count
    return run >= persist


def alert_summary(
    times: pd.Series, failure: pd.Timestamp, alert: np.ndarray, horizon_h: float
) -> dict[str, float]:
    """Lead time (min) of the first alert inside the last horizon (NaN: missed); false alerts before it:
    episodes started, and the share of those snapshots spent in alert."""
    in_horizon = (times >= failure - pd.Timedelta(hours=horizon_h)).to_numpy()
    onsets = alert & ~np.concatenate([[False], alert[:-1]])
    hits = np.flatnonzero(alert & in_horizon)
    before = ~in_horizon
    return {
        "lead_min": (failure - times.iloc[hits[0]]).total_seconds() / 60.0 if len(hits) else float("nan"),
        "false_alerts": int((onsets & before).sum()),
        "false_alert_share": float(alert[before].mean()) if before.any() else float("nan"),
    }


def lobo_probabilities(
    frame: pd.DataFrame, labels: pd.Series, horizon_h: float, args: argparse.Namespace
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the probability from a model that never saw its machine, and that model's alert threshold."""
    probability, threshold = np.full(len(frame), np.nan), np.full(len(frame), np.nan)
    machines = frame["machine_id"].to_numpy()
    for machine in sorted(set(machines)):
        held = machines == machine
        n_train = len(set(machines[~held]))
        config = TrainConfig(
            horizon_h=horizon_h,
            folds=min(args.folds, n_train),
            seed=args.seed,
            nthread=args.nthread,
        )
        train = ~held & labels.notna().to_numpy()
        model = train_risk_model(
            frame.loc[train].reset_index(drop=True),
            labels[train].reset_index(drop=True),
            FeatureConfig(),
            config,
        )
        probability[held] = model.predict_proba(frame.loc[held])
        threshold[held] = model.thresholds["high"]
    return probability, threshold


def score_machine(
    rows: pd.DataFrame, y: np.ndarray, score: np.ndarray, threshold: float, events: pd.DataFrame, args
) -> dict[str, float]:
    """ROC/PR AUC over the machine's labelled snapshots, lead time and false alerts of its sustained alerts."""
    known = ~np.isnan(y)
    ranked = np.nan_to_num(score[known], nan=-1e300)  # an unscorable row ranks last
    both = len(np.unique(y[known])) == 2
    failure = next_failure(rows.iloc[[-1]], events).iloc[0]
    alert = sustained(np.nan_to_num(score, nan=-np.inf) >= threshold, args.persist)
    return {
        "roc_auc": float(roc_auc_score(y[known], ranked)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y[known], ranked)) if both else float("nan"),
        **alert_summary(rows["timestamp"].reset_index(drop=True), failure, alert, args.horizon_h),
    }


def machine_table(
    frame: pd.DataFrame,
    labels: pd.Series,
    probability: np.ndarray,
    threshold: np.ndarray,
    ratio: np.ndarray,
    events: pd.DataFrame,
    args: argparse.Namespace,
) -> pd.DataFrame:
    """One row per run-to-failure machine: model and baseline metrics side by side."""
    failures = next_failure(frame, events)
    records = []
    for machine, rows in frame.groupby("machine_id", sort=True):
        idx = rows.index.to_numpy()
        if failures.iloc[idx].isna().all():
            print(f"note: {machine} has no failure event after its data; skipped", file=sys.stderr)
            continue
        y = labels.to_numpy()[idx]
        model = score_machine(rows, y, probability[idx], float(threshold[idx[0]]), events, args)
        base = score_machine(rows, y, ratio[idx], args.rms_k, events, args)
        times = rows["timestamp"]
        records.append(
            {
                "machine_id": machine,
                "run_h": (failures.iloc[idx[0]] - times.iloc[0]).total_seconds() / 3600.0,
                "snapshots": len(rows),
                "positives": int(np.nansum(y)),
                "threshold": float(threshold[idx[0]]),
                **{f"model_{k}": v for k, v in model.items()},
                **{f"rms_{k}": v for k, v in base.items()},
            }
        )
    return pd.DataFrame(records)


def median_lead(leads: pd.Series) -> float:
    """Median lead time in minutes, a missed failure counting as 0 min."""
    return float(leads.fillna(0.0).median())


def headline(table: pd.DataFrame, args: argparse.Namespace) -> str:
    defined = int(table["model_roc_auc"].notna().sum())
    note = f" (AUC defined for {defined})" if defined < len(table) else ""
    return (
        f"LOBO mean ROC AUC {table['model_roc_auc'].mean():.2f} "
        f"(RMS-threshold baseline {table['rms_roc_auc'].mean():.2f}), "
        f"mean PR AUC {table['model_pr_auc'].mean():.2f} (baseline {table['rms_pr_auc'].mean():.2f}), "
        f"median lead time {median_lead(table['model_lead_min']):.0f} min "
        f"(baseline {median_lead(table['rms_lead_min']):.0f} min), "
        f"missed {int(table['model_lead_min'].isna().sum())} (baseline {int(table['rms_lead_min'].isna().sum())}), "
        f"false alerts {int(table['model_false_alerts'].sum())} (baseline {int(table['rms_false_alerts'].sum())}), "
        f"{len(table)} bearings{note}, horizon {args.horizon_h:g} h"
    )


def print_table(table: pd.DataFrame) -> None:
    shown = table.assign(
        **{c: table[c].round(3) for c in table.columns if c.endswith(("_auc", "threshold", "_share"))},
        **{c: table[c].round(1) for c in ("run_h", "model_lead_min", "rms_lead_min")},
    )
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(shown.to_string(index=False, na_rep="-"))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    timings = {}
    start = time.perf_counter()
    dataset = load_dataset(args.data_dir)
    timings["load"] = time.perf_counter() - start
    start = time.perf_counter()
    frame = features_without_failures(dataset, args.signals)
    timings["features"] = time.perf_counter() - start
    labels = failure_within(frame, dataset.events, dataset.latest_reading(), args.horizon_h)
    ratio = rms_ratio(frame, args.baseline_snapshots)
    start = time.perf_counter()
    probability, threshold = lobo_probabilities(frame, labels, args.horizon_h, args)
    timings["lobo_training"] = time.perf_counter() - start
    table = machine_table(frame, labels, probability, threshold, ratio, dataset.events, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    snapshots = len(dataset.waveforms.meta)
    print(
        f"{args.data_dir}: {len(frame)} snapshot times, {snapshots} channel snapshots, "
        f"{len(frame.columns) - 2} features ({args.signals}); quarantined rows: {len(dataset.quarantine)}"
    )
    print(
        f"time: load {timings['load']:.1f} s, features {timings['features']:.1f} s "
        f"({snapshots / timings['features']:.0f} channel snapshots/s), LOBO training {timings['lobo_training']:.1f} s"
    )
    print(
        f"model: XGBoost, alert = {args.persist} snapshots >= thresholds['high']; baseline: RMS > {args.rms_k:g} x "
        f"median of first {args.baseline_snapshots} snapshots, same persistence; table saved to {args.out}"
    )
    print_table(table)
    print(headline(table, args))


if __name__ == "__main__":
    main()

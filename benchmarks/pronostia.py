"""Alarm benchmark on run-to-failure bearings (FEMTO PRONOSTIA layout): lead time and false alarms of the product.

Usage: ``python benchmarks/pronostia.py TEST_DIR [--train TRAIN_DIR]``

Both folders are datasets in the equipment data contract v1 where every bearing is run to failure (its failure
event ends its data). With ``--train``, one model is trained on every bearing of TRAIN_DIR and each bearing of
TEST_DIR is evaluated; without it, each bearing of TEST_DIR is held out in turn and the model is trained on the
others (leave one bearing out). Nothing here names a bearing or is tuned to one folder: every setting below is
chosen by the training bearings alone, the same way in every fold.

Protocol for one set of training bearings and the bearings it is tested on:

* features: ``build_features`` (default ``FeatureConfig``) at every snapshot time, failure events held back;
  ``--features relative`` (default) keeps what compares a bearing with itself and transfers across speed and
  load: the ratios to the bearing's own early baseline and the dimensionless shape features.
* horizon: the label is ``failure_within(h)`` with h a fraction (``--horizon-fractions``) of the training
  bearings' median life, since lives run from under an hour to about 8 hours.
* choice by the training bearings: an inner leave-one-bearing-out over them (``train_risk_model`` on all but one,
  ``predict_proba`` on that one) gives out-of-fold risk timelines for each candidate horizon; every candidate
  (horizon, alert, clear, open_after) of a small grid is scored on them with ``models.alarms``, and the one that
  warns with lead >= ``--min-lead`` of life and at most ``--max-false`` false alarms on most inner bearings wins
  (ties: fewer false alarms, then the more conservative alarm). The held-out bearing is never looked at.
* product: ``train_risk_model`` on all training bearings with the chosen horizon, ``predict_proba`` on the test
  bearing, the chosen hysteresis (``models.alarms``).
* scoring (``evaluate_episodes``): the warning is the episode still open at the failure; its lead is the time from
  its start to the failure as a fraction of the bearing's life (first snapshot to failure); an episode that
  cleared before the failure is a false alarm. ``opened_at`` shows where in life the warning opened and
  ``alarm_share`` the share of snapshots in alarm, so an alarm that is simply always on is visible.
* named baseline, same hysteresis grid and inner choice: an RMS rule on the library's
  ``vib__<channel>__rms__ratio_to_baseline`` (max over channels), thresholds chosen on the training bearings.

Prints the per-bearing table, saves it (default ``benchmarks/results/pronostia.csv``) and ends with the headline.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from contract import exit_2_on_input_error, load_or_exit, quarantine_notes, run_to_failure, until_failure
from joblib import Parallel, delayed
from sklearn.metrics import roc_auc_score

from features.build import KEYS, FeatureConfig, build_features
from models.alarms import AlarmConfig, alarm_episodes, alarm_states, evaluate_episodes
from models.labels import failure_within
from models.train import TrainConfig, train_risk_model

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pronostia.csv"
SHAPE_SUFFIXES = (
    "kurtosis",
    "crest_factor",
    "skewness",
    "shape_factor",
    "impulse_factor",
    "hf_ratio",
    "_snr",
)
MODEL_ALERTS = (0.3, 0.5, 0.7, 0.9)  # calibrated probability of failing within the horizon
RMS_ALERTS = (1.5, 2.0, 3.0, 4.0, 6.0)  # RMS over the bearing's own early baseline
CLEAR_SHARES = (1.0, 0.5, 0.2)  # clear threshold = share of the alert threshold (1: no hysteresis)
OPEN_AFTER = (1, 3, 6)  # consecutive snapshots at or over the alert to open
MIN_TRAIN_BEARINGS = (
    3  # the inner leave-one-bearing-out fits on all but one, and calibration needs 2 bearings
)


@dataclasses.dataclass
class Bearings:
    """Run-to-failure bearings: feature rows, failure time and first snapshot time per bearing."""

    frame: pd.DataFrame
    events: pd.DataFrame
    end_of_data: pd.Series

    @property
    def ids(self) -> list[str]:
        return sorted(self.frame["machine_id"].unique())

    @property
    def failures(self) -> pd.Series:
        failed = self.events[self.events["kind"] == "failure"]
        return failed.groupby("machine_id")["timestamp"].max().reindex(self.ids)

    @property
    def life_start(self) -> pd.Series:
        return self.frame.groupby("machine_id")["timestamp"].min().reindex(self.ids)

    def subset(self, ids: list[str]) -> Bearings:
        rows = self.frame["machine_id"].isin(ids).to_numpy()
        return Bearings(self.frame.loc[rows].reset_index(drop=True), self.events, self.end_of_data)

    def labels(self, horizon_h: float) -> pd.Series:
        return failure_within(self.frame, self.events, self.end_of_data, horizon_h)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("test_dir", type=Path, help="run-to-failure bearings to evaluate (data contract v1)")
    parser.add_argument("--train", type=Path, help="train on every bearing of this folder (default: LOBO)")
    parser.add_argument("--features", choices=("relative", "vibration", "all"), default="relative")
    parser.add_argument(
        "--horizon-fractions",
        type=lambda s: tuple(float(x) for x in s.split(",")),
        default=(0.1, 0.2, 0.35),
        help="candidate horizons, as fractions of the training bearings' median life",
    )
    parser.add_argument("--min-lead", type=float, default=0.10, help="lead wanted, as a fraction of life")
    parser.add_argument(
        "--max-lead",
        type=float,
        default=0.5,
        help="a warning opened earlier than this fraction of life before failure is 'early', not credited",
    )
    parser.add_argument("--max-false", type=int, default=1, help="false alarms allowed per bearing")
    parser.add_argument("--folds", type=int, default=4, help="calibration folds of the product model")
    parser.add_argument("--inner-folds", type=int, default=2, help="calibration folds of inner models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nthread", type=int, default=1, help="XGBoost threads (1 on a shared 2-core box)")
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes for the inner fits (1: all in this process)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV of the per-bearing table")
    return parser.parse_args(argv)


def select_features(frame: pd.DataFrame, features: str) -> pd.DataFrame:
    """The feature columns the model may use: ``all``, ``vibration`` (``vib__*``) or ``relative`` (ratios to the
    bearing's own baseline and dimensionless shape features)."""
    if features == "all":
        return frame
    keep = [c for c in frame.columns if c.startswith("vib__")]
    if features == "relative":
        keep = [c for c in keep if c.endswith(("__ratio_to_baseline", *SHAPE_SUFFIXES))]
    return frame[[*KEYS, *keep]]


def load_bearings(folder: Path, features: str) -> Bearings:
    """Feature table at every snapshot time, built without failure events (they are the labels)."""
    dataset = load_or_exit(folder)
    for note in quarantine_notes(dataset):
        print(f"note: {folder}: {note}")
    inputs = dataclasses.replace(dataset, events=dataset.events[dataset.events["kind"] != "failure"])
    frame = select_features(build_features(inputs, config=FeatureConfig()).frame, features)
    failed, notes = run_to_failure(frame, dataset.events)
    for note in notes:
        print(f"note: {folder}: {note}")
    frame = until_failure(frame, failed)
    ends = (dataset.events["kind"] != "failure") | (
        dataset.events["timestamp"] == dataset.events["machine_id"].map(failed)
    )  # the failure that ends the bearing's data; one before its first snapshot is not its end of life
    return Bearings(
        frame.sort_values(KEYS).reset_index(drop=True), dataset.events[ends], dataset.latest_reading()
    )


def check_counts(test: Bearings, train: Bearings | None, args: argparse.Namespace) -> None:
    """Enough run-to-failure bearings for the protocol: its inner leave-one-bearing-out trains calibrated
    models on all training bearings but one, and calibration needs two of them."""
    where = f"{args.test_dir}" + (f" and {args.train}" if train is not None else "")
    n_train = len(train.ids) if train is not None else len(test.ids) - 1
    if not test.ids:
        raise SystemExit(
            f"{args.test_dir}: no bearing with a failure event after its first snapshot to evaluate"
        )
    if n_train < MIN_TRAIN_BEARINGS:
        need = MIN_TRAIN_BEARINGS + (0 if train is not None else 1)
        found = len(train.ids) if train is not None else len(test.ids)
        folder = args.train if train is not None else args.test_dir
        raise SystemExit(
            f"{folder}: {found} run-to-failure bearing(s); this protocol needs at least {need} "
            f"({MIN_TRAIN_BEARINGS} to train on, since the alarm settings are chosen by an inner leave-one-bearing-out"
            f" over them); add bearings that end in a failure event, or train on another folder with --train "
            f"(checked: {where})"
        )


def feature_gap(train: Bearings, test: Bearings) -> tuple[str, float] | None:
    """Say when the test bearings lack features the training bearings have (e.g. channels named otherwise), and
    the share of the training features they lack."""
    usable = [c for c in train.frame.columns if c not in KEYS and train.frame[c].notna().any()]
    missing = [c for c in usable if c not in test.frame or test.frame[c].isna().all()]
    if not missing:
        return None

    def channels(frame: pd.DataFrame) -> list[str]:
        return sorted({c.split("__")[1] for c in frame.columns if c.startswith("vib__")})

    return (
        f"the test bearings lack {len(missing)} of the {len(usable)} features the model trains on "
        f"(e.g. {', '.join(missing[:3])}); vibration channels: train {channels(train.frame)}, test "
        f"{channels(test.frame)}: rename the test channels to match, or the model sees NaN there",
        len(missing) / len(usable),
    )


def median_life_h(bearings: Bearings) -> float:
    return float(((bearings.failures - bearings.life_start).dt.total_seconds() / 3600.0).median())


def fit_and_predict(train: Bearings, test: Bearings, horizon_h: float, folds: int, args) -> np.ndarray:
    """The product: ``train_risk_model`` on the training bearings, calibrated risk on the test rows."""
    labels = train.labels(horizon_h)
    known = labels.notna().to_numpy()
    config = TrainConfig(
        horizon_h=horizon_h, folds=min(folds, len(train.ids)), seed=args.seed, nthread=args.nthread
    )
    model = train_risk_model(
        train.frame.loc[known].reset_index(drop=True),
        labels[known].reset_index(drop=True),
        FeatureConfig(),
        config,
    )
    risk = model.predict_proba(test.frame)
    in_baseline = test.frame.groupby("machine_id").cumcount() < FeatureConfig().baseline_snapshots
    return np.where(in_baseline.to_numpy(), np.nan, risk)  # no alarm decisions before a bearing's baseline


def rms_score(bearings: Bearings) -> np.ndarray:
    """Baseline score: max over channels of the library's RMS ratio to the bearing's own early baseline."""
    columns = [c for c in bearings.frame.columns if c.endswith("__rms__ratio_to_baseline")]
    if not columns:
        raise SystemExit("no vib__<channel>__rms__ratio_to_baseline column: the RMS baseline needs waveforms")
    return bearings.frame[columns].max(axis=1).to_numpy(dtype=float)


def score_alarms(bearings: Bearings, risk: np.ndarray, config: AlarmConfig) -> pd.DataFrame:
    """Per bearing: warned, lead (h and fraction of life), false alarms, where the warning opened, alarm share."""
    states = alarm_states(bearings.frame[KEYS].assign(risk=risk), config)
    scored = evaluate_episodes(alarm_episodes(states), bearings.failures, bearings.life_start)
    life_h = ((bearings.failures - bearings.life_start).dt.total_seconds() / 3600.0).to_numpy()
    warning_start = pd.to_datetime(scored["warning_start"], utc=True).reset_index(drop=True)
    opened = (warning_start - bearings.life_start.reset_index(drop=True)).dt.total_seconds() / 3600.0
    share = states.groupby("machine_id")["alarm"].mean().reindex(scored["machine_id"])
    return scored.assign(life_h=life_h, opened_at=opened.to_numpy() / life_h, alarm_share=share.to_numpy())


def on_target(lead: pd.Series, false_alarms: pd.Series, args) -> pd.Series:
    """Warned with a lead of at least ``--min-lead`` and at most ``--max-lead`` of life, and at most ``--max-false``
    false alarms. A warning opened earlier than ``--max-lead`` is not credited: an alarm that comes on early in life
    and never clears would otherwise "warn" every bearing."""
    return (lead >= args.min_lead) & (lead <= args.max_lead) & (false_alarms <= args.max_false)


def candidates(alerts: tuple[float, ...]) -> list[AlarmConfig]:
    return [
        AlarmConfig(alert=a, clear=a * c, open_after=k)
        for a, c, k in itertools.product(alerts, CLEAR_SHARES, OPEN_AFTER)
    ]


def choose(
    timelines: dict[float, tuple[Bearings, np.ndarray]], alerts: tuple[float, ...], args
) -> tuple[float, AlarmConfig, int]:
    """The (horizon, hysteresis) that meets the target on the most inner bearings; ties: fewer false alarms, less
    time in alarm, then the higher alert, slower opening, higher clear and shorter horizon."""
    best: tuple | None = None
    for horizon_h, (bearings, risk) in timelines.items():
        for config in candidates(alerts):
            scored = score_alarms(bearings, risk, config)
            met = int(on_target(scored["lead_fraction"], scored["false_alarms"], args).sum())
            key = (
                met,
                -int(scored["false_alarms"].sum()),
                -float(scored["alarm_share"].sum()),
                config.alert,
                config.open_after,
                config.clear,
                -horizon_h,
            )
            if best is None or key > best[0]:
                best = (key, horizon_h, config)
    assert best is not None
    return best[1], best[2], best[0][0]


def inner_timelines(train: Bearings, horizons: list[float], args) -> dict[float, tuple[Bearings, np.ndarray]]:
    """Out-of-fold risk of every training bearing (inner leave one bearing out), per candidate horizon. The
    fits are independent: ``--jobs`` processes compute them (same results as one after the other: every fit
    is seeded and single-threaded)."""
    pairs = [(horizon_h, held) for horizon_h in horizons for held in train.ids]
    fits = Parallel(n_jobs=args.jobs)(
        delayed(fit_and_predict)(
            train.subset([m for m in train.ids if m != held]),
            train.subset([held]),
            horizon_h,
            args.inner_folds,
            args,
        )
        for horizon_h, held in pairs
    )
    timelines = {}
    for horizon_h in horizons:
        risk = np.full(len(train.frame), np.nan)
        for (h, held), fitted in zip(pairs, fits, strict=True):
            if h == horizon_h:
                risk[(train.frame["machine_id"] == held).to_numpy()] = fitted
        timelines[horizon_h] = (train, risk)
    return timelines


def run_fold(train: Bearings, test: Bearings, args) -> pd.DataFrame:
    """Choose horizon and hysteresis on the training bearings, then score the product and the RMS rule on test."""
    life = median_life_h(train)
    horizons = [round(f * life, 3) for f in args.horizon_fractions]
    horizon_h, config, met = choose(inner_timelines(train, horizons, args), MODEL_ALERTS, args)
    risk = fit_and_predict(train, test, horizon_h, args.folds, args)
    model = score_alarms(test, risk, config)
    rms_config = choose({0.0: (train, rms_score(train))}, RMS_ALERTS, args)[1]
    rms = score_alarms(test, rms_score(test), rms_config)
    y = test.labels(horizon_h).to_numpy()
    auc = []
    for machine in model["machine_id"]:
        rows = (test.frame["machine_id"] == machine).to_numpy() & ~np.isnan(y)
        two = len(np.unique(y[rows])) == 2
        auc.append(roc_auc_score(y[rows], np.nan_to_num(risk[rows], nan=-1.0)) if two else np.nan)
    return pd.DataFrame(
        {
            "machine_id": model["machine_id"],
            "life_h": model["life_h"],
            "horizon_h": horizon_h,
            "alert": config.alert,
            "clear": config.clear,
            "open_after": config.open_after,
            "inner_met": f"{met}/{len(train.ids)}",
            "roc_auc": auc,
            "warned": model["warned"],
            "opened_at": model["opened_at"],
            "lead_min": model["lead_h"] * 60.0,
            "lead_pct": model["lead_fraction"] * 100.0,
            "false_alarms": model["false_alarms"],
            "alarm_share": model["alarm_share"],
            "rms_rule": f"{rms_config.alert:g}/{rms_config.clear:g}/{rms_config.open_after}",
            "rms_lead_pct": rms["lead_fraction"] * 100.0,
            "rms_false_alarms": rms["false_alarms"],
        }
    )


def folds_of(test: Bearings, train: Bearings | None) -> list[tuple[Bearings, Bearings]]:
    if train is not None:
        return [(train, test)]
    return [(test.subset([m for m in test.ids if m != held]), test.subset([held])) for held in test.ids]


def headline(table: pd.DataFrame, args: argparse.Namespace, prefix: str = "") -> str:
    """The brief's line, with the warnings that opened too early to credit and the on-target count beside it."""
    lead = table[f"{prefix}lead_pct"].fillna(0.0)
    false_alarms = table[f"{prefix}false_alarms"]
    min_pct, max_pct = args.min_lead * 100, args.max_lead * 100
    early = int((lead > max_pct).sum())
    met = int(on_target(lead / 100, false_alarms, args).sum())
    return (
        f"lead >= {min_pct:g} % of life on {int((lead >= min_pct).sum())}/{len(table)} bearings "
        f"({early} opened more than {max_pct:g} % of life before failure); median lead {lead.median():.0f} % "
        f"of life; false alarms {int(false_alarms.sum())} (at most {int(false_alarms.max())} on one bearing); "
        f"on target ({min_pct:g}-{max_pct:g} % lead, <= {args.max_false} false): {met}/{len(table)}"
    )


def print_table(table: pd.DataFrame) -> None:
    shown = table.assign(
        life_h=table["life_h"].round(2),
        horizon_h=table["horizon_h"].round(2),
        roc_auc=table["roc_auc"].round(2),
        opened_at=(table["opened_at"] * 100).round(0),
        lead_min=table["lead_min"].round(1),
        lead_pct=table["lead_pct"].round(1),
        alarm_share=(table["alarm_share"] * 100).round(0),
        rms_lead_pct=table["rms_lead_pct"].round(1),
    )
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(shown.to_string(index=False, na_rep="-"))


def timed(label: str, timings: dict[str, float], step: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = step()
    timings[label] = time.perf_counter() - start
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    timings: dict[str, float] = {}
    test = timed("features", timings, lambda: load_bearings(args.test_dir, args.features))
    train = load_bearings(args.train, args.features) if args.train else None
    assert isinstance(test, Bearings)
    check_counts(test, train, args)
    gap = feature_gap(train, test) if train is not None else None
    if gap:
        print(f"note: {gap[0]}")
        if gap[1] > 0.5:  # as the score flow: most of the model's inputs missing is not an evaluation
            raise SystemExit(f"{args.test_dir}: {gap[0]}")
    start = time.perf_counter()
    parts = []
    for fold_train, fold_test in folds_of(test, train):
        parts.append(run_fold(fold_train, fold_test, args))
        held = ", ".join(fold_test.ids) if train is None else "test bearings"
        print(f"fold {held}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    timings["folds"] = time.perf_counter() - start
    table = pd.concat(parts, ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    protocol = f"train on {args.train}" if args.train else "leave one bearing out"
    print(
        f"{args.test_dir}: {len(test.ids)} bearings, {len(test.frame)} snapshot times, "
        f"{len(test.frame.columns) - 2} features ({args.features}); {protocol}; "
        f"time: features {timings['features']:.0f} s, training and choice {timings['folds']:.0f} s"
    )
    print(
        "columns: horizon/alert/clear/open_after chosen by the training bearings (inner_met: inner bearings on "
        "target); opened_at and alarm_share in % of life; rms_rule = alert/clear/open_after of the RMS-ratio "
        f"baseline; table saved to {args.out}"
    )
    print_table(table)
    print(f"RMS-ratio baseline: {headline(table, args, 'rms_')}")
    print(f"model: {headline(table, args)}")


if __name__ == "__main__":
    exit_2_on_input_error(main)

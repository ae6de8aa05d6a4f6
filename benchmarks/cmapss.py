"""NASA C-MAPSS remaining-life benchmark: gradient boosting on window features, against published results.

Usage: ``python benchmarks/cmapss.py DATA_DIR [--nthread 1] [--out benchmarks/results/cmapss.csv]``

``DATA_DIR`` holds ``train/`` (engines run to failure, with failure events) and ``test/`` (engines cut some
time before failure), both datasets in the equipment data contract v1, and ``test_truth.parquet``
(``machine_id``, ``rul_cycles``: true remaining cycles after each test engine's last reading). Nothing here
names a file of one subset, an engine or a constant fitted to one subset: FD001-FD004 run unchanged.

Protocol (the standard one): one prediction per test engine at its last cycle; RMSE and the PHM08 score
against the true remaining life, uncapped (the published figures) and capped at the chosen cap.

* cycles: one cycle is the median spacing of a train engine's readings (a day in the converted data);
  remaining life is counted in cycles, windows are cycles turned into hours for ``features.telemetry``.
* operating conditions: settings columns (names containing ``setting``) are standardised on train and
  clustered with KMeans; the number of conditions is the k (up to 8) whose inertia falls at least 100-fold
  from k - 1 (tight regimes, FD002/FD004: 6), else 1 (FD001/FD003: settings are noise around one point).
  Each sensor is z-normalised per condition with train statistics; sensors constant on train are dropped.
* health indicators: the first principal components of the normalised sensors, fitted on train readings
  (no labels). They average out the sensor noise; in CV on FD001, window features of every raw sensor
  added to them scored worse (RMSE 10.0 against 9.3 with the short windows), so the features use them only.
* features at every reading (as of that reading, nothing later): the engine's age in cycles; per health
  indicator, the last value and the windowed mean, std and least-squares slope (``telemetry_features_asof``),
  and the distance of the middle window's mean from the engine's own early-life baseline (mean of its
  first BASELINE_CYCLES cycles).
* model: ``models.rul.train_rul_regressor`` (XGBoost, trees chosen by early stopping in GroupKFold on
  engines) on every train reading with a known remaining life, target capped; the prediction is the mean of
  the full fit and the fold models.
* selection: a handful of configurations (cap, windows, health indicators) scored by the same GroupKFold on the
  train engines only: the out-of-fold prediction of each held-out engine, cut at every cycle whose true
  remaining life is at most the largest candidate cap, against the uncapped truth (RMSE, then PHM08 per
  engine as tie-break). The test set and its truth are read only after the choice is made.

Prints the cross-validation table, the chosen configuration and the test figures with the published ones,
saves one row per configuration and the test figures as CSV, and ends with the headline line
``RMSE r PHM08 s (uncapped truth, n engines)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from contract import quarantine_notes
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from features.dataset import Dataset, load_dataset
from features.errors import InputError
from features.telemetry import telemetry_features_asof
from models.rul import RulConfig, phm08_score, predict, remaining_life, rmse, train_rul_regressor

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "cmapss.csv"
MAX_CONDITIONS = 8
CONDITION_DROP = 100.0  # inertia must fall this many times from k - 1 to k for k tight conditions
BASELINE_CYCLES = 10  # an engine's early-life baseline: the mean of its first cycles
PUBLISHED_FD001 = {  # RMSE, PHM08 (see /work/shared/data/README.md)
    "CNN (Babu et al. 2016)": (18.45, 1299.0),
    "deep LSTM (Zheng et al. 2017)": (16.14, 338.0),
    "AGCNN": (12.42, 225.5),
    "MS-DCNN": (11.44, 196.0),
    "MTSTAN": (10.97, 175.0),
}


@dataclass(frozen=True)
class Candidate:
    """One configuration of the bounded search."""

    cap: float  # cycles
    windows: tuple[int, ...]  # cycles
    components: int  # health indicators: principal components of the normalised sensors

    @property
    def name(self) -> str:
        return f"cap={self.cap:g} windows={','.join(map(str, self.windows))} components={self.components}"


SHORT, LONG = (5, 10, 20, 40, 80), (10, 20, 40, 80, 160)
CANDIDATES = (
    Candidate(125, SHORT, 2),
    Candidate(115, LONG, 2),
    Candidate(125, LONG, 2),
    Candidate(135, LONG, 2),
    Candidate(125, LONG, 3),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="folder with train/, test/ and test_truth.parquet")
    parser.add_argument("--nthread", type=int, default=1, help="XGBoost threads (at most 2 on a shared box)")
    parser.add_argument("--folds", type=int, default=5, help="GroupKFold folds over train engines")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="CSV of the results")
    return parser.parse_args(argv)


def read_truth(path: Path, test: Dataset) -> pd.Series:
    """True remaining cycles of each test engine at its last reading, indexed by machine_id."""
    if not path.is_file():
        raise InputError(f"{path}: not found; fix: give a DATA_DIR holding test_truth.parquet")
    table = pd.read_parquet(path)
    for column in ("machine_id", "rul_cycles"):
        if column not in table:
            raise InputError(f"{path}: column '{column}' is missing; fix: add the true remaining cycles")
    truth = pd.Series(table["rul_cycles"].to_numpy(dtype=float), index=table["machine_id"].astype(str))
    unknown = sorted(set(test.telemetry["machine_id"]) - set(truth.index))
    if unknown:
        raise InputError(f"{path}: no true remaining life for test engine '{unknown[0]}'; fix: add its row")
    return truth


def cycle_hours(telemetry: pd.DataFrame) -> float:
    """Hours per cycle: the median spacing of consecutive readings of one engine."""
    gaps = telemetry.groupby("machine_id")["timestamp"].diff().dropna().dt.total_seconds() / 3600.0
    if gaps.empty or not gaps.median() > 0:
        raise InputError("train/telemetry: cannot tell the cycle length (no engine has two readings)")
    return float(gaps.median())


@dataclass
class Conditions:
    """Operating-condition clusters of the settings and per-condition sensor statistics, fitted on train."""

    settings: list[str]
    sensors: list[str]
    centre: np.ndarray
    scale: np.ndarray
    kmeans: KMeans | None
    mean: pd.DataFrame  # condition x sensor
    std: pd.DataFrame

    def label(self, telemetry: pd.DataFrame) -> np.ndarray:
        """Operating condition of each reading; -1 where a setting is missing (its condition is unknown)."""
        if self.kmeans is None:
            return np.zeros(len(telemetry), dtype=np.int64)
        z = (telemetry[self.settings].to_numpy(dtype=float) - self.centre) / self.scale
        known = np.isfinite(z).all(axis=1)
        condition = np.full(len(telemetry), -1, dtype=np.int64)
        if known.any():
            condition[known] = self.kmeans.predict(z[known])
        return condition

    def normalise(self, telemetry: pd.DataFrame) -> pd.DataFrame:
        """Sensors z-scored per operating condition with train statistics (machine_id, timestamp kept); NaN
        where the reading's condition is unknown (a missing setting): such a reading counts as missing."""
        condition = self.label(telemetry)
        mean = np.vstack([self.mean.to_numpy(), np.full(len(self.sensors), np.nan)])[condition]
        std = np.vstack([self.std.to_numpy(), np.ones(len(self.sensors))])[condition]
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std > 0, (telemetry[self.sensors].to_numpy(dtype=float) - mean) / std, 0.0)
        out = pd.DataFrame(z, columns=self.sensors, index=telemetry.index)
        return pd.concat([telemetry[["machine_id", "timestamp"]], out], axis=1)


def fit_conditions(train: pd.DataFrame, seed: int = 0) -> Conditions:
    """Cluster the settings into operating conditions; per-condition sensor mean and std on train."""
    settings = [c for c in train.columns if "setting" in c.lower()]
    z = train[settings].to_numpy(dtype=float)
    known = np.isfinite(z).all(axis=1)  # readings with a missing setting: no condition, not clustered
    with np.errstate(invalid="ignore"):
        centre, scale = np.nanmean(z, axis=0), np.nanstd(z, axis=0)
    centre[~np.isfinite(centre)], scale[~(scale > 0)] = 0.0, 1.0
    z = ((z - centre) / scale)[known]
    inertia, models = [float(((z - z.mean(axis=0)) ** 2).sum()) if len(z) else 0.0], [None]
    for k in range(2, MAX_CONDITIONS + 1) if settings and len(z) > MAX_CONDITIONS else ():
        kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(z)
        inertia.append(float(kmeans.inertia_))
        models.append(kmeans)
    drops = [inertia[k - 1] / max(inertia[k], 1e-300) for k in range(1, len(inertia))]
    best = int(np.argmax(drops)) + 1 if drops and max(drops) >= CONDITION_DROP else 0
    kmeans = models[best]
    condition = np.zeros(len(train), np.int64)
    if kmeans is not None:
        condition[~known], condition[known] = -1, kmeans.labels_
    candidates = [c for c in train.columns if c not in ("machine_id", "timestamp", *settings)]
    grouped = train[candidates][condition >= 0].groupby(condition[condition >= 0])
    mean, std = grouped.mean(), grouped.std()
    varies = std > 1e-9 * (mean.abs() + 1)  # a sensor may be constant in one condition only
    sensors = [c for c in candidates if varies[c].any()]
    std = std[sensors].where(varies[sensors], 0.0)  # z = 0 where the sensor is constant in the condition
    return Conditions(settings, sensors, centre, scale, kmeans, mean[sensors], std)


def fit_health_indicators(norm: pd.DataFrame, sensors: list[str], components: int) -> PCA:
    """Principal components of the normalised train sensors (no labels): noise-averaged health indicators."""
    return PCA(n_components=min(components, len(sensors))).fit(np.nan_to_num(norm[sensors].to_numpy()))


def health_indicators(norm: pd.DataFrame, sensors: list[str], pca: PCA) -> tuple[pd.DataFrame, list[str]]:
    """machine_id, timestamp and one column per health indicator ``hi<k>``."""
    names = [f"hi{k}" for k in range(pca.n_components_)]
    scores = pca.transform(np.nan_to_num(norm[sensors].to_numpy()))  # a missing reading sits at its mean
    values = pd.DataFrame(scores, columns=names, index=norm.index)
    return pd.concat([norm[["machine_id", "timestamp"]], values], axis=1), names


def baseline_distance(series: pd.DataFrame, columns: list[str], window_mean: pd.DataFrame) -> pd.DataFrame:
    """Windowed mean minus the engine's early-life baseline (mean of its first BASELINE_CYCLES readings, or
    of the readings so far before that)."""
    ids = series["machine_id"].to_numpy()
    seen = series.groupby("machine_id", sort=False).cumcount().to_numpy() + 1
    sums = series.groupby("machine_id", sort=False)[columns].cumsum().to_numpy()
    first = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    engine_start = np.repeat(first, np.diff(np.r_[first, len(series)]))
    capped = np.minimum(seen, BASELINE_CYCLES)
    baseline = sums[engine_start + capped - 1] / capped[:, None]
    names = [f"base__{c}__distance" for c in columns]
    return pd.DataFrame(window_mean.to_numpy() - baseline, columns=names, index=series.index)


def engine_features(
    series: pd.DataFrame, columns: list[str], windows: tuple[int, ...], cycle_h: float
) -> pd.DataFrame:
    """Features at every reading of ``series`` (grouped by engine, in time order), from that reading and
    earlier ones only: age, and per column its last value, windowed mean, std, slope and baseline distance."""
    # exact hours (whole ones as ints, for the feature names): rounding would turn the windows of cycles shorter
    # than an hour into 0 h, and distort those of cycles of minutes
    windows_h = tuple(int(h) if float(h).is_integer() else h for h in (w * cycle_h for w in windows))
    as_of = series[["machine_id", "timestamp"]]
    tel = telemetry_features_asof(series, as_of, windows_h, max_age_h=cycle_h * 1.5)
    stats = ("__mean__", "__std__", "__slope__")
    tel = tel[[c for c in tel.columns if c.endswith("__last") or any(s in c for s in stats)]]
    mid = windows_h[len(windows_h) // 2]
    means = tel[[f"tel__{c}__mean__{mid}h" for c in columns]]
    age = series.groupby("machine_id", sort=False).cumcount().astype(float).rename("age_cycles")
    return pd.concat([age, tel, baseline_distance(series, columns, means)], axis=1)


def sorted_norm(dataset: Dataset, conditions: Conditions) -> pd.DataFrame:
    tel = dataset.telemetry.sort_values(["machine_id", "timestamp"]).reset_index(drop=True)
    return conditions.normalise(tel)


@dataclass
class Prepared:
    """Normalised train and test readings, the train targets (cycles) and the cycle length."""

    train: pd.DataFrame
    test: pd.DataFrame
    sensors: list[str]
    life: np.ndarray  # uncapped remaining cycles of each train reading (NaN at the failure itself)
    cycle_h: float
    conditions: int


def check_columns(train: Dataset, test: Dataset, conditions: Conditions) -> None:
    """The test readings need every sensor the model reads in train, and the settings when they tell
    operating conditions apart."""
    settings = conditions.settings if conditions.kmeans is not None else []
    missing = [c for c in (*settings, *conditions.sensors) if c not in test.telemetry]
    if missing:
        raise InputError(
            f"{test.root}/telemetry: column(s) {', '.join(missing)} of the train readings are missing; fix: "
            "export the same settings and sensors for the test engines"
        )


def prepare(train: Dataset, test: Dataset) -> Prepared:
    cycle_h = cycle_hours(train.telemetry)
    conditions = fit_conditions(train.telemetry)
    check_columns(train, test, conditions)
    norm_train, norm_test = sorted_norm(train, conditions), sorted_norm(test, conditions)
    end = train.telemetry.groupby("machine_id")["timestamp"].max()
    rows = norm_train[["machine_id", "timestamp"]]
    life = remaining_life(rows, train.events, end, cap_h=np.inf).to_numpy() / cycle_h
    if np.isnan(life).all():
        raise InputError(
            f"{train.root}: no train reading has a known remaining life; fix: add failure events"
        )
    n_conditions = 1 if conditions.kmeans is None else int(conditions.kmeans.n_clusters)
    return Prepared(norm_train, norm_test, conditions.sensors, life, cycle_h, n_conditions)


def candidate_features(data: Prepared, candidate: Candidate) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test feature tables of one configuration."""
    pca = fit_health_indicators(data.train, data.sensors, candidate.components)
    frames = []
    for norm in (data.train, data.test):
        series, names = health_indicators(norm, data.sensors, pca)
        frames.append(engine_features(series, names, candidate.windows, data.cycle_h))
    return frames[0], frames[1]


def cv_score(oof: np.ndarray, truth: np.ndarray, max_truth: float) -> tuple[float, float]:
    """Out-of-fold RMSE and mean PHM08 per cut, at cuts with truth <= max_truth (uncapped truth)."""
    at = truth <= max_truth
    return rmse(oof[at], truth[at]), phm08_score(oof[at], truth[at]) / max(int(at.sum()), 1)


def rul_config(candidate: Candidate, args: argparse.Namespace) -> RulConfig:
    return RulConfig(
        cap=candidate.cap,
        folds=args.folds,
        learning_rate=0.05,
        early_stopping_rounds=60,
        nthread=args.nthread,
    )


def cross_validate(data: Prepared, args: argparse.Namespace) -> pd.DataFrame:
    """CV figures of every candidate on the train engines (out-of-fold, engines unseen)."""
    known = ~np.isnan(data.life)
    engines = data.train["machine_id"].to_numpy()[known]
    max_truth = max(c.cap for c in CANDIDATES)
    rows = []
    for candidate in CANDIDATES:
        start = time.perf_counter()
        x, _ = candidate_features(data, candidate)
        x = x.loc[known].reset_index(drop=True)
        model = train_rul_regressor(x, data.life[known], engines, rul_config(candidate, args))
        cv_rmse, cv_phm = cv_score(model.oof, data.life[known], max_truth)
        rows.append(
            {
                "config": candidate.name,
                "cv_rmse": cv_rmse,
                "cv_phm08_per_cut": cv_phm,
                "trees": model.rounds,
                "seconds": time.perf_counter() - start,
            }
        )
        print(f"  {candidate.name:<52} CV RMSE {cv_rmse:6.2f}  PHM08/cut {cv_phm:6.3f}  trees {model.rounds}")
    return pd.DataFrame(rows)


def test_figures(pred: np.ndarray, truth: np.ndarray, cap: float) -> dict[str, float]:
    return {
        "test_rmse": rmse(pred, truth),
        "test_phm08": phm08_score(pred, truth),
        "test_rmse_capped_truth": rmse(pred, np.minimum(truth, cap)),
        "test_phm08_capped_truth": phm08_score(pred, np.minimum(truth, cap)),
    }


def main(argv: list[str] | None = None) -> int:
    try:
        return run(parse_args(argv))
    except InputError as error:  # bad input: one line naming the file, column and fix; no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


def sensor_notes(train: Dataset, test: Dataset, kept: list[str]) -> list[str]:
    """The train sensors left out (constant in every operating condition) and kept sensors the test engines
    never read (they enter the health indicators at their train mean)."""
    numeric = train.telemetry.select_dtypes("number").columns
    dropped = [c for c in numeric if c not in kept and "setting" not in c.lower()]
    empty = [c for c in kept if test.telemetry[c].isna().all()]
    notes = []
    if dropped:
        notes.append(f"left out, constant within every operating condition in train: {', '.join(dropped)}")
    if empty:
        notes.append(
            f"no test reading of {', '.join(empty)}: read at its train mean in every health indicator"
        )
    return notes


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    train, test = load_dataset(args.data_dir / "train"), load_dataset(args.data_dir / "test")
    for part, dataset in (("train", train), ("test", test)):  # rows set aside change the result: say so
        for note in quarantine_notes(dataset):
            print(f"note ({part}): {note}")
    truth = read_truth(args.data_dir / "test_truth.parquet", test)  # before the search: fail fast
    data = prepare(train, test)
    print(
        f"{args.data_dir}: {train.telemetry['machine_id'].nunique()} train engines, "
        f"{test.telemetry['machine_id'].nunique()} test engines; cycle = {data.cycle_h:g} h; "
        f"{data.conditions} operating condition(s); {len(data.sensors)} sensors kept"
    )
    for note in sensor_notes(train, test, data.sensors):
        print(f"note: {note}")
    print(
        f"Cross-validation on the train engines only (GroupKFold, {args.folds} folds; the test set is unused):"
    )
    cv = cross_validate(data, args)
    best = CANDIDATES[int(np.lexsort((cv["cv_phm08_per_cut"], cv["cv_rmse"]))[0])]
    print(f"chosen by CV: {best.name}")
    x_train, x_test = candidate_features(data, best)
    known = ~np.isnan(data.life)
    engines = data.train["machine_id"].to_numpy()[known]
    model = train_rul_regressor(x_train.loc[known], data.life[known], engines, rul_config(best, args))
    last = data.test.groupby("machine_id", sort=False).tail(1).index
    pred = predict(model, x_test.loc[last])
    true = truth.reindex(data.test.loc[last, "machine_id"]).to_numpy()
    figures = test_figures(pred, true, best.cap)
    elapsed = time.perf_counter() - started
    report(cv, best, figures, len(true), elapsed, args.out)
    print(
        f"RMSE {figures['test_rmse']:.2f} PHM08 {figures['test_phm08']:.1f} (uncapped truth, {len(true)} engines)"
    )
    return 0


def report(cv: pd.DataFrame, best: Candidate, figures: dict, n: int, elapsed: float, out: Path) -> None:
    """Print the test figures beside the published ones and save the CSV."""
    print(
        f"test, one prediction per engine at its last cycle ({n} engines), {elapsed:.0f} s in all:\n"
        f"  against truth capped at {best.cap:g}: RMSE {figures['test_rmse_capped_truth']:.2f} "
        f"PHM08 {figures['test_phm08_capped_truth']:.1f}\n"
        "  published on FD001 (uncapped truth), RMSE / PHM08:"
    )
    for name, (r, s) in PUBLISHED_FD001.items():
        print(f"    {name:<32} {r:6.2f} / {s:7.1f}")
    table = cv.assign(chosen=cv["config"] == best.name)
    for key, value in figures.items():
        table[key] = np.where(table["chosen"], value, np.nan)
    table["engines"] = n
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"saved {out}")


if __name__ == "__main__":
    sys.exit(main())

"""A small, bounded random search over the booster's settings, scored on out-of-fold predictions grouped by
machine (never on the hold-out). Trial 0 is always the configured settings, so the search can only keep or
improve them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import average_precision_score

SEARCHED = ("max_depth", "learning_rate", "subsample", "colsample_bytree", "min_child_weight")


def sample_settings(rng: np.random.Generator) -> dict[str, float | int]:
    """One draw from the bounded space (depths 3-7, learning rates 0.02-0.2 on a log scale, row and column
    sampling 0.6-1.0, minimum child weight 1-10 on a log scale)."""
    return {
        "max_depth": int(rng.integers(3, 8)),
        "learning_rate": float(np.exp(rng.uniform(np.log(0.02), np.log(0.2)))),
        "subsample": float(rng.uniform(0.6, 1.0)),
        "colsample_bytree": float(rng.uniform(0.6, 1.0)),
        "min_child_weight": float(np.exp(rng.uniform(0.0, np.log(10.0)))),
    }


def random_search(
    evaluate: Callable[[dict], tuple[np.ndarray, int]],
    y: np.ndarray,
    base: dict,
    trials: int,
    seed: int,
) -> tuple[list[dict], list[np.ndarray]]:
    """Run ``trials`` settings (the base first) through ``evaluate`` (settings -> out-of-fold scores, boosting
    rounds); return one record per trial (settings, out-of-fold PR AUC, rounds) and each trial's scores."""
    rng = np.random.default_rng(seed)
    candidates = [{k: base[k] for k in SEARCHED}] + [sample_settings(rng) for _ in range(max(trials - 1, 0))]
    records, outputs = [], []
    for i, settings in enumerate(candidates):
        scores, rounds = evaluate(settings)
        outputs.append(scores)
        records.append(
            {
                "trial": i,
                **settings,
                "oof_pr_auc": float(average_precision_score(y, scores)),
                "rounds": rounds,
            }
        )
    return records, outputs


def best_trial(records: list[dict]) -> dict:
    """The trial with the highest out-of-fold PR AUC (the earliest among equals, so the base wins ties)."""
    return max(records, key=lambda r: (r["oof_pr_auc"], -r["trial"]))

"""The bounded random search: stays in bounds, keeps the base settings as trial 0, picks the best out-of-fold."""

from __future__ import annotations

import numpy as np

from models.search import SEARCHED, best_trial, random_search, sample_settings


def test_samples_stay_in_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = sample_settings(rng)
        assert 3 <= s["max_depth"] <= 7 and 0.02 <= s["learning_rate"] <= 0.2
        assert (
            0.6 <= s["subsample"] <= 1
            and 0.6 <= s["colsample_bytree"] <= 1
            and 1 <= s["min_child_weight"] <= 10
        )


def test_base_is_trial_zero_and_the_best_out_of_fold_wins():
    y = np.array([0, 0, 1, 1])
    base = {k: 1 for k in SEARCHED}

    def evaluate(settings):  # deeper trees rank perfectly here, shallow ones do not
        good = settings["max_depth"] >= 5
        return (np.array([0.1, 0.2, 0.8, 0.9]) if good else np.array([0.9, 0.2, 0.8, 0.1])), 7

    records, scores = random_search(evaluate, y, base, trials=8, seed=1)
    assert len(records) == len(scores) == 8 and records[0]["max_depth"] == 1
    best = best_trial(records)
    assert best["max_depth"] >= 5 and best["oof_pr_auc"] == 1.0
    assert best == min((r for r in records if r["oof_pr_auc"] == 1.0), key=lambda r: r["trial"])
    single, _ = random_search(evaluate, y, base, trials=1, seed=1)
    assert len(single) == 1 and best_trial(single)["trial"] == 0

"""Champion/challenger rules: same rows, same question, never rows the champion trained on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from models.promotion import Comparison, comparability, promotion_decision, sanity_problems, unseen_by


def model(horizon_h=168.0, end="2026-01-10", machines=("A",)):
    return SimpleNamespace(horizon_h=horizon_h, info={"train_end": end, "train_machine_ids": list(machines)})


def rows():
    t = pd.to_datetime(["2026-01-05", "2026-01-15", "2026-01-05"], utc=True)
    return pd.DataFrame({"machine_id": ["A", "A", "B"], "timestamp": t})


def test_rows_seen_in_training_are_excluded():
    np.testing.assert_array_equal(unseen_by(model(), rows()), [False, True, True])


def test_different_horizons_are_not_comparable():
    reason = comparability(model(168), model(24), rows(), pd.Series([0, 1, 0]))
    assert "not the same question" in reason
    assert comparability(model(), model(), rows(), pd.Series([0, 0, 0])) != ""
    assert comparability(model(), model(), rows(), pd.Series([0, 1, 0])) == ""


def test_decisions():
    assert promotion_decision(None) == (True, "no champion yet")
    promoted, reason = promotion_decision(Comparison("3", False, "different horizons"))
    assert not promoted and "different horizons" in reason and "v3" in reason
    better = Comparison("3", True, rows=50, champion={"pr_auc": 0.5}, challenger={"pr_auc": 0.6})
    assert promotion_decision(better, margin=0.05)[0]
    assert not promotion_decision(better, margin=0.2)[0]
    undefined = Comparison("3", True, rows=50, champion={"pr_auc": float("nan")}, challenger={"pr_auc": 0.6})
    assert not promotion_decision(undefined)[0]


def test_sanity_checks_block_promotion():
    spec = SimpleNamespace(columns=("a", "b", "c"))
    candidate = SimpleNamespace(spec=spec)
    holdout = pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]})
    problems = sanity_problems(candidate, holdout, {"calibration_error": 0.3}, max_calibration_error=0.1)
    assert len(problems) == 3
    assert "missing from the hold-out (e.g. c)" in problems[0]
    assert "all-NaN in the hold-out (e.g. b)" in problems[1]
    assert "calibration error 0.300" in problems[2]
    fine = pd.DataFrame({"a": [1.0], "b": [2.0], "c": [np.nan]})
    assert sanity_problems(candidate, fine.assign(c=3.0), {"calibration_error": 0.02}) == []
    promoted, reason = promotion_decision(None, problems=problems)
    assert not promoted and reason.startswith("failed sanity checks")


def test_a_hold_out_too_small_or_of_one_class_is_named_first():
    candidate = SimpleNamespace(spec=SimpleNamespace(columns=("a",)))
    rows = pd.DataFrame({"a": np.arange(40.0)})
    tiny = sanity_problems(candidate, rows.head(2), {"calibration_error": 0.3}, labels=pd.Series([0, 1]))
    assert tiny[0].startswith("the hold-out has 2 labelled rows, 1 of them with a failure within the horizon")
    assert "fix: more history" in tiny[0] and "calibration error" in tiny[1]
    no_failure = sanity_problems(candidate, rows, {"calibration_error": 0.02}, labels=pd.Series([0] * 40))
    assert no_failure[0].startswith("the hold-out has 40 labelled rows, 0 of them")
    both = pd.Series([0] * 30 + [1] * 10)
    assert sanity_problems(candidate, rows, {"calibration_error": 0.02}, labels=both) == []


def test_a_model_no_better_than_chance_is_not_promoted():
    candidate = SimpleNamespace(spec=SimpleNamespace(columns=("a",)))
    rows, labels = pd.DataFrame({"a": np.arange(40.0)}), pd.Series([0] * 30 + [1] * 10)
    worse = sanity_problems(
        candidate, rows, {"roc_auc": 0.17, "pr_auc": 0.1, "calibration_error": 0.02}, labels=labels
    )
    assert worse == ["ROC AUC 0.170 on the hold-out: the model ranks machines no better than chance"]
    flat = sanity_problems(
        candidate, rows, {"roc_auc": 0.6, "pr_auc": 0.2, "calibration_error": 0.02}, labels=labels
    )
    assert flat[0].startswith(
        "PR AUC 0.200 on the hold-out is no better than the share of rows with a failure ahead (0.250)"
    )
    good = {"roc_auc": 0.9, "pr_auc": 0.7, "calibration_error": 0.02}
    assert sanity_problems(candidate, rows, good, labels=labels) == []

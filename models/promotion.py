"""Champion/challenger: promote a new model only when it beats the champion on the same hold-out."""

from __future__ import annotations

import math

PROMOTION_METRIC = "pr_auc"


def promotion_decision(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    margin: float = 0.0,
    metric: str = PROMOTION_METRIC,
) -> tuple[bool, str]:
    """Whether to promote, and why, comparing ``metric`` on one hold-out (higher is better)."""
    new = challenger.get(metric, float("nan"))
    if not math.isfinite(new):
        return False, f"challenger has no {metric} on the hold-out (one class only?)"
    if champion is None:
        return True, "no champion yet"
    old = champion.get(metric, float("nan"))
    if not math.isfinite(old):
        return True, f"champion has no {metric} on this hold-out (its features are unavailable here)"
    if new > old + margin:
        return True, f"challenger {metric} {new:.4f} beats champion {old:.4f} by more than {margin}"
    return False, f"challenger {metric} {new:.4f} does not beat champion {old:.4f} by more than {margin}"

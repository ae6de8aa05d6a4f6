"""The final fit of the risk model's booster with ``xgboost.dask``, for training rows spread over a cluster.

``train_risk_model(..., fit_booster=dask_booster_fitter(client))`` fits the last booster (all training rows,
the chosen settings and number of rounds) on the cluster's workers, each holding a block of rows; the result
is an ordinary ``xgboost.Booster``, stored in the same bundle as a local fit. The cross-validation that chooses
the settings and calibrates the scores stays local (it needs every fold's scores back in one place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xgboost as xgb

BoosterFitter = Callable[[dict, np.ndarray, np.ndarray, int], xgb.Booster]


def fit_booster_locally(params: dict, x: np.ndarray, y: np.ndarray, rounds: int) -> xgb.Booster:
    """The final booster fitted in this process (the default)."""
    return xgb.train(params, xgb.DMatrix(x, label=y), rounds)


def dask_booster_fitter(client: Any, row_blocks: int | None = None) -> BoosterFitter:
    """A fitter that trains with ``xgboost.dask`` on ``client``'s cluster, the rows cut into ``row_blocks``
    blocks (default: two per worker)."""

    def fit(params: dict, x: np.ndarray, y: np.ndarray, rounds: int) -> xgb.Booster:
        import dask.array as da
        from xgboost import dask as dxgb

        blocks = row_blocks or 2 * max(len(client.scheduler_info()["workers"]), 1)
        rows = max(-(-len(y) // blocks), 1)
        features = da.from_array(x, chunks=(rows, x.shape[1]))
        labels = da.from_array(y, chunks=rows)
        matrix = dxgb.DaskDMatrix(client, features, labels)
        return dxgb.train(client, params, matrix, num_boost_round=rounds)["booster"]

    return fit

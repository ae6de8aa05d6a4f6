"""Rolling-element bearing defect frequencies, as orders (multiples of shaft frequency).

Kinematic formulas for a bearing with a stationary outer race and the inner race turning with the shaft
(no slip), from Randall & Antoni, "Rolling element bearing diagnostics - A tutorial", Mechanical Systems
and Signal Processing 25(2), 485-520, 2011:

    BPFO = n/2 * (1 - d/D cos(phi))          ball pass frequency, outer race
    BPFI = n/2 * (1 + d/D cos(phi))          ball pass frequency, inner race
    BSF  = D/(2d) * (1 - (d/D cos(phi))^2)   ball (roller) spin frequency
    FTF  = 1/2 * (1 - d/D cos(phi))          fundamental train (cage) frequency

with n rolling elements of diameter d, pitch diameter D and contact angle phi.

Known answer, SKF 6205-2RS JEM (drive-end bearing of the Case Western Reserve University bearing data set):
n = 9, d = 7.94 mm, D = 39.04 mm, phi = 0 gives BPFO = 3.5848, BPFI = 5.4152, BSF = 2.3567, FTF = 0.3983
orders, i.e. 107.4 / 162.2 / 70.6 / 11.9 Hz at 1797 rpm. CWRU's published table lists BSF as 4.7135 orders
(141.17 Hz): that is 2 x BSF, the rate at which a ball defect strikes the races (once per race per spin
turn). This module returns BSF itself; the ``2x`` envelope features of ``features.vibration`` cover 2 x BSF.

Actual frequencies differ from these by 1-2 % because of slip; readers of a spectrum should use a tolerance.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

DEFECT_NAMES: tuple[str, ...] = ("bpfo", "bpfi", "bsf", "ftf")


def defect_orders(
    n_balls: ArrayLike,
    ball_diameter_mm: ArrayLike,
    pitch_diameter_mm: ArrayLike,
    contact_angle_deg: ArrayLike = 0.0,
) -> dict[str, np.ndarray]:
    """Bearing defect frequencies in orders (multiples of shaft speed): keys bpfo, bpfi, bsf, ftf.

    Inputs broadcast against each other; outputs are float64 arrays of the broadcast shape. Missing geometry
    (NaN) or geometry that cannot exist (fewer than one ball, non-positive diameters, ball not smaller than
    the pitch diameter, |contact angle| >= 90 deg) gives NaN, never an invented value.
    """
    n, d, pitch, angle = np.broadcast_arrays(
        *(
            np.asarray(v, dtype=np.float64)
            for v in (n_balls, ball_diameter_mm, pitch_diameter_mm, contact_angle_deg)
        )
    )
    valid = (n >= 1) & (d > 0) & (pitch > d) & (np.abs(angle) < 90.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(valid, d / pitch * np.cos(np.deg2rad(angle)), np.nan)
        d_safe = np.where(valid, d, np.nan)
        orders = {
            "bpfo": n / 2.0 * (1.0 - ratio),
            "bpfi": n / 2.0 * (1.0 + ratio),
            "bsf": pitch / (2.0 * d_safe) * (1.0 - ratio * ratio),
            "ftf": 0.5 * (1.0 - ratio),
        }
    return {name: np.asarray(value, dtype=np.float64) for name, value in orders.items()}

"""Condition-monitoring vibration features, vectorised over a batch of acceleration snapshots.

Input: ``values`` of shape ``(n_snapshots, n_samples)`` in g, one sample rate for the whole batch. Output: a
dict ``feature suffix -> float64 array (n_snapshots,)``; the caller prefixes ``vib__<channel>__``.

Conventions an analyst can check:

* The snapshot mean (sensor DC offset) is removed first; every feature describes the mean-removed signal, so
  ``rms**2`` is the variance and equals the sum of band energies covering 0..Nyquist (Parseval).
* Spectra are one rfft of the whole snapshot (rectangular window) for energies (exactly Parseval). Peak
  amplitudes (orders, envelope lines) are read from the Hann-windowed spectrum, obtained from the same rfft by
  the 3-tap convolution ``0.5 X[k] - 0.25 (X[k-1] + X[k+1])`` and corrected for Hann's coherent gain, so a
  sine of amplitude A reads A on a bin and at least 0.84 A between bins (scalloping loss <= 1.42 dB).
* A band ``(lo, hi)`` holds the bins with ``lo <= f < hi``; the Nyquist bin belongs to a band with
  ``hi >= Nyquist``. A band lying entirely above Nyquist was not measured and gives NaN, not 0.
* Peaks are read as the largest amplitude in ``target * (1 +- defect_tolerance)`` (at least the nearest bin).
  A target that is NaN, not positive, or outside the analysed spectrum gives NaN.
* Envelope analysis (Randall & Antoni 2011): band-pass in the frequency domain, analytic signal by inverse
  FFT of only the band's positive-frequency bins (shifted to baseband and sampled at twice the band width; the
  envelope's magnitude is unchanged by the shift), envelope = |analytic| minus its mean, then its spectrum.
* Automatic envelope band (``VibrationConfig.envelope_band_hz is None``), per snapshot: the 0.1*fs-wide window
  with the largest power inside 0.1*fs..0.4*fs (the usable band of a 2.56x-oversampled acquisition, above most
  shaft and gear harmonics; start searched on a grid of 1/8 of the width): the resonance that impacts excite.
  Above 25.6 kHz the region starts no higher than 2.56 kHz: bearing resonances are excited at a few kHz
  whatever the sample rate, and a 48 kHz acquisition would otherwise search only above 4.8 kHz (the width stays
  0.1*fs, so the envelope spectrum still reaches the high defect lines of fast shafts). ``envelope_bands_hz``
  reports the band chosen per snapshot. The envelope spectrum reaches 0.1*fs.
* Normalised envelope lines (``envelope__<line>_snr``, dB): the same band, cepstrum pre-whitened (every bin
  divided by its magnitude, which removes resonances, transfer paths and discrete tones: Borghesani et al.,
  MSSP 2013; used in Smith & Randall's CWRU benchmark study, MSSP 2015), demodulated the same way. A line's
  SNR is its Hann-windowed peak (within the tolerance) over the median of the whitened envelope spectrum
  within +-10 % of the line (at least +-8 bins; 17 evenly spread bins of that window): dimensionless,
  independent of sensor gain, mounting and resonance, so it carries the fault's kinematics from one bearing
  to another. Noise alone reads about 3-6 dB in 1 s snapshots (white noise about 0 dB in 0.1 s, 4 dB in 1 s,
  7 dB in 10 s: the peak is the largest of more bins when the resolution is finer), so compare snapshots of one
  length. Sideband SNRs are the mean of the lower and upper sideband's.
  Harmonic families (``envelope__<defect>_harmonics_snr``: 1-3x BPFO, 1-3x BPFI, 1-4x BSF) are
  10 log10 of the mean, over the family's readable harmonics, of (line peak / its floor)^2; family ratios
  (``envelope__bpfi_to_bpfo_db`` ...) are differences of two families in dB, i.e. log ratios of their powers.
  Whitening needs the slip jitter of real rolling elements: a strictly periodic synthetic impulse train puts
  its energy on a few exact harmonics, which whitening flattens into the noise.

All arithmetic is float32 (``scipy.fft`` keeps complex64; sums are accumulated in float32 chunks of 256 and
then in float64). The per-sample work (FFTs, sums, the spectra that lines are read from) runs on cache-sized
blocks of rows, each fully vectorised; the per-row formulas (line windows, peaks, medians, ratios) then run
once per chunk of many blocks, where one numpy call covers a thousand rows instead of a hundred. Each
snapshot's features depend on that snapshot only (the same in any batch, up to float32 rounding of the BLAS
band sums).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np
import scipy.fft as sfft
from numpy.typing import ArrayLike
from scipy.linalg.blas import sger as _blas_ger

from features.bearings import DEFECT_NAMES

STANDARD_GRAVITY_M_S2 = 9.80665
_BLOCK_ROWS = 128  # rows per block of the per-sample work (its buffers stay in cache)
_CHUNK_ROWS = 1024  # rows per chunk: per-row quantities gathered, then the feature formulas on all of them
_AUTO_REGION_FS = (0.1, 0.4)
_AUTO_WIDTH_FS = 0.1
_AUTO_MAX_START_HZ = 2560.0  # ... the region's start no higher: that of a 25.6 kHz acquisition
_MIN_SAMPLES = 16
_SAFE_SPAN = (2.0**-20, 2.0**24)  # largest |sample| whose float32 fourth powers sum without under/overflow
_ORDERS = (1, 2, 3)
_AUTO_GRID = 8  # auto band: window start searched on a grid of 1/8 of its width
_HANN_AMPLITUDE = 4.0  # 2 (one-sided) / 0.5 (Hann coherent gain): |X_hann| * 4 / N is amplitude
_SUM_CHUNK = 256  # float32 partial sums of this many samples, then float64
_FLOOR_HALF_WIDTH = 0.1  # SNR floor: median within +-10 % of the line ...
_FLOOR_MIN_BINS = 8  # ... and at least +-8 bins
_FLOOR_SHIFT = 4
_FLOOR_POINTS = 2**_FLOOR_SHIFT + 1  # bins sampled evenly across the floor window: one vectorised median
_CHUNK_ONES = np.ones(_SUM_CHUNK, np.float32)
_WHITENED_SNR = "_whitened_line_snr"  # internal block output: every whitened line's SNR (dB), (rows, lines)


@dataclass(frozen=True)
class VibrationConfig:
    """Settings of the vibration feature set (frequencies in Hz)."""

    bands_hz: tuple[tuple[float, float], ...] = ((10, 500), (500, 1000), (1000, 2000), (2000, 5000))
    envelope_band_hz: tuple[float, float] | None = None  # None: automatic, see module docstring
    defect_tolerance: float = 0.02  # relative speed/slip tolerance when reading a peak
    hf_split_hz: float = 1000.0  # hf_ratio = energy at or above this / total
    velocity_band_hz: tuple[float, float] = (10.0, 1000.0)
    # False: no envelope analysis (about half the work): every envelope__* feature is NaN, the others are the
    # same; for machines without rolling-element bearings, or a first screening of a large batch
    envelope: bool = True

    def __post_init__(self) -> None:
        """Reject settings that cannot describe a frequency band."""
        for band in (*self.bands_hz, self.velocity_band_hz, self.envelope_band_hz):
            if band is not None and not (0 <= band[0] < band[1] < np.inf):
                raise ValueError(f"band {band} must satisfy 0 <= lo < hi, both finite (Hz)")
        bands = [(float(lo), float(hi)) for lo, hi in self.bands_hz]  # one feature name per band
        repeated = sorted({band for band in bands if bands.count(band) > 1})
        if repeated:
            raise ValueError(f"bands_hz lists a band twice: {repeated} (each band is one feature column)")
        if self.velocity_band_hz[0] <= 0:
            raise ValueError("velocity_band_hz must start above 0 Hz (velocity = acceleration / 2 pi f)")
        if not 0 <= self.defect_tolerance < 0.5:
            raise ValueError("defect_tolerance must be in [0, 0.5)")
        if not 0 < self.hf_split_hz < np.inf:
            raise ValueError("hf_split_hz must be positive and finite")


DEFAULT_VIBRATION_CONFIG = VibrationConfig()


@dataclass(frozen=True)
class FeatureInfo:
    """Unit and one-line crew-readable description of a vibration feature."""

    unit: str  # "g", "g²", "mm/s", "Hz", "dB", "" (ratio)
    description: str


_PARTS = {
    "bpfo": "outer-race fault",
    "bpfi": "inner-race fault",
    "bsf": "rolling-element (ball) fault",
    "ftf": "cage fault",
}


def _envelope_info(defect: str, harmonic: int) -> FeatureInfo:
    """Description of an envelope-spectrum amplitude at a defect frequency (harmonic 1 or 2)."""
    line = f"{'2×' if harmonic == 2 else ''}{defect.upper()}"
    note = " (a ball defect strikes both races each spin)" if (defect, harmonic) == ("bsf", 2) else ""
    return FeatureInfo("g", f"{_PARTS[defect]} signal (envelope spectrum amplitude at {line}){note}")


# Whitened-envelope lines: suffix -> (defect order, harmonic, modulating order or None, description)
_SNR_LINES: dict[str, tuple[str, int, str | None, str]] = {
    "bpfo_snr": ("bpfo", 1, None, f"{_PARTS['bpfo']} line above noise (whitened envelope at BPFO)"),
    "bpfi_snr": ("bpfi", 1, None, f"{_PARTS['bpfi']} line above noise (whitened envelope at BPFI)"),
    "bsf_snr": ("bsf", 1, None, f"{_PARTS['bsf']} line above noise (whitened envelope at BSF)"),
    "bsf_2x_snr": (
        "bsf",
        2,
        None,
        f"{_PARTS['bsf']} line above noise (whitened envelope at 2×BSF: a ball defect strikes both races)",
    ),
    "ftf_snr": ("ftf", 1, None, f"{_PARTS['ftf']} line above noise (whitened envelope at FTF)"),
    "bpfi_sideband_snr": (
        "bpfi",
        1,
        "shaft",
        "inner-race fault modulated by the turning shaft (whitened envelope at BPFI ± 1×, mean of both)",
    ),
    "bsf_sideband_snr": (
        "bsf",
        2,
        "ftf",
        "ball fault modulated by the cage (whitened envelope at 2×BSF ± FTF, mean of both)",
    ),
}

# Harmonic families in the whitened envelope: defect -> highest harmonic read (1x ... Kx). A ball defect strikes
# both races each spin, so its family runs to 4x BSF (2x and 4x BSF: the race strikes).
_FAMILY_HARMONICS: dict[str, int] = {"bpfo": 3, "bpfi": 3, "bsf": 4}
# Whitened lines read only for the families (the others are _SNR_LINES): (defect, harmonic)
_EXTRA_LINES: tuple[tuple[str, int], ...] = tuple(
    (defect, harmonic)
    for defect, top in _FAMILY_HARMONICS.items()
    for harmonic in range(1, top + 1)
    if not any(line[:3] == (defect, harmonic, None) for line in _SNR_LINES.values())
)
# Columns of the whitened line SNRs (``_snr_targets_hz`` order): the _SNR_LINES targets (two per sideband
# line), then the _EXTRA_LINES; _FAMILY_COLUMNS: column of each family harmonic, in _FAMILY_HARMONICS order
_SNR_WIDTHS = [1 if modulation is None else 2 for _, _, modulation, _ in _SNR_LINES.values()]
_N_SNR_TARGETS = sum(_SNR_WIDTHS)
_LINE_COLUMNS: dict[tuple[str, int], int] = {
    **{
        (defect, harmonic): sum(_SNR_WIDTHS[:j])
        for j, (defect, harmonic, modulation, _) in enumerate(_SNR_LINES.values())
        if modulation is None
    },
    **{line: _N_SNR_TARGETS + j for j, line in enumerate(_EXTRA_LINES)},
}
_FAMILY_COLUMNS: tuple[int, ...] = tuple(
    _LINE_COLUMNS[defect, harmonic]
    for defect, top in _FAMILY_HARMONICS.items()
    for harmonic in range(1, top + 1)
)
# Position in _FAMILY_COLUMNS of each extra line (the family harmonic it is read for)
_EXTRA_IN_FAMILY: tuple[int, ...] = tuple(
    _FAMILY_COLUMNS.index(_N_SNR_TARGETS + j) for j in range(len(_EXTRA_LINES))
)
# Family ratios: suffix -> (numerator family, denominator family)
_FAMILY_RATIOS: dict[str, tuple[str, str]] = {
    "bpfi_to_bpfo_db": ("bpfi", "bpfo"),
    "bsf_to_bpfo_db": ("bsf", "bpfo"),
    "bsf_to_bpfi_db": ("bsf", "bpfi"),
}


def _family_info(defect: str) -> FeatureInfo:
    """Description of a whitened-envelope harmonic family SNR."""
    top = _FAMILY_HARMONICS[defect]
    return FeatureInfo(
        "dB",
        f"{_PARTS[defect]} lines above noise, harmonics 1–{top}× {defect.upper()} together "
        "(whitened envelope, mean of the lines' power over their noise floors)",
    )


def _ratio_info(numerator: str, denominator: str) -> FeatureInfo:
    """Description of a ratio between two defect families."""
    return FeatureInfo(
        "dB",
        f"{_PARTS[numerator]} over {_PARTS[denominator]} signature "
        f"({numerator.upper()} family SNR minus {denominator.upper()} family SNR)",
    )


VIBRATION_FEATURES: dict[str, FeatureInfo] = {
    "rms": FeatureInfo("g", "overall vibration level (RMS acceleration)"),
    "peak": FeatureInfo("g", "largest acceleration excursion from the mean"),
    "peak_to_peak": FeatureInfo("g", "acceleration swing from lowest to highest point"),
    "crest_factor": FeatureInfo("", "peakiness of the vibration: peak over RMS (rises with early impacts)"),
    "kurtosis": FeatureInfo("", "impulsiveness of the vibration (3 for random noise, higher with impacts)"),
    "skewness": FeatureInfo("", "asymmetry of the vibration waveform (0 when symmetric)"),
    "shape_factor": FeatureInfo("", "waveform shape: RMS over mean absolute level"),
    "impulse_factor": FeatureInfo("", "impact severity: peak over mean absolute level"),
    "band_energy": FeatureInfo("g²", "vibration energy in one frequency band"),
    "spectral_centroid_hz": FeatureInfo(
        "Hz", "where the vibration energy sits in frequency (mean frequency)"
    ),
    "hf_ratio": FeatureInfo("", "share of vibration energy at high frequency (above 1 kHz by default)"),
    "velocity_rms_mm_s": FeatureInfo(
        "mm/s", "vibration velocity RMS (10–1000 Hz by default; ISO 20816 severity)"
    ),
    "order_1x_amp": FeatureInfo("g", "vibration at shaft speed (1×: unbalance)"),
    "order_2x_amp": FeatureInfo("g", "vibration at twice shaft speed (2×: misalignment, looseness)"),
    "order_3x_amp": FeatureInfo("g", "vibration at three times shaft speed (3×: misalignment, looseness)"),
    **{
        f"envelope__{defect}{'_2x' if harmonic == 2 else ''}_amp": _envelope_info(defect, harmonic)
        for harmonic in (1, 2)
        for defect in DEFECT_NAMES
    },
    "envelope__rms": FeatureInfo("g", "strength of repetitive impacting (RMS of the demodulated envelope)"),
    **{f"envelope__{name}": FeatureInfo("dB", line[3]) for name, line in _SNR_LINES.items()},
    **{f"envelope__{defect}_harmonics_snr": _family_info(defect) for defect in _FAMILY_HARMONICS},
    **{f"envelope__{name}": _ratio_info(*pair) for name, pair in _FAMILY_RATIOS.items()},
}

_BAND_NAME = re.compile(r"band_energy__([0-9p]+)_([0-9p]+)hz")


def vibration_feature_info(name: str) -> FeatureInfo:
    """Unit and description of a feature suffix (or a full ``vib__<channel>__<suffix>`` name)."""
    if name.startswith("vib__"):
        name = name.split("__", 2)[-1]
    if name in VIBRATION_FEATURES:
        return VIBRATION_FEATURES[name]
    match = _BAND_NAME.fullmatch(name)
    if match is None:
        raise KeyError(f"unknown vibration feature {name!r}")
    lo, hi = (group.replace("p", ".") for group in match.groups())
    return FeatureInfo("g²", f"vibration energy in the {lo}–{hi} Hz band")


def _format_hz(value: float) -> str:
    """Frequency for a feature name: 500 -> '500', 2.5 -> '2p5', 1e-05 -> '0p00001' (never an exponent)."""
    return np.format_float_positional(float(value), trim="-").replace(".", "p")


def band_feature_name(lo_hz: float, hi_hz: float) -> str:
    """Feature suffix of a band energy, e.g. ``band_energy__500_1000hz``."""
    return f"band_energy__{_format_hz(lo_hz)}_{_format_hz(hi_hz)}hz"


def _envelope_feature_names() -> list[str]:
    """Suffixes of the envelope defect amplitudes, fundamental then second harmonic."""
    return [f"envelope__{d}{'_2x' if h == 2 else ''}_amp" for h in (1, 2) for d in DEFECT_NAMES]


def _snr_feature_names() -> list[str]:
    """Suffixes of the whitened-envelope features (dB): line SNRs, harmonic family SNRs, family ratios."""
    return [
        *(f"envelope__{name}" for name in _SNR_LINES),
        *(f"envelope__{defect}_harmonics_snr" for defect in _FAMILY_HARMONICS),
        *(f"envelope__{name}" for name in _FAMILY_RATIOS),
    ]


def vibration_feature_names(config: VibrationConfig = DEFAULT_VIBRATION_CONFIG) -> list[str]:
    """All feature suffixes ``vibration_features`` returns for ``config``, in output order."""
    return [
        *("rms", "peak", "peak_to_peak", "crest_factor", "kurtosis", "skewness"),
        *("shape_factor", "impulse_factor"),
        *(band_feature_name(lo, hi) for lo, hi in config.bands_hz),
        *("spectral_centroid_hz", "hf_ratio", "velocity_rms_mm_s"),
        *(f"order_{k}x_amp" for k in _ORDERS),
        *_envelope_feature_names(),
        "envelope__rms",
        *_snr_feature_names(),
    ]


def nan_reasons(
    shaft_hz: ArrayLike | None,
    defect_orders: Mapping[str, ArrayLike] | None,
    values: np.ndarray | None = None,
    n_snapshots: int | None = None,
) -> list[str | None]:
    """Per snapshot, why speed-related features are NaN ("no shaft speed", ...; "; "-joined), or None.

    "no shaft speed" (NaN/None) and "shaft not turning" (<= 0 Hz) explain NaN order and envelope-line
    features; "no bearing geometry" explains NaN envelope-line features (amplitudes and SNRs); "signal has
    missing samples" (NaN in ``values``, if given) explains NaN in every feature. A line beyond the analysed
    spectrum is also NaN but is not listed (it depends on the sample rate, not on the row's inputs).
    """
    n = _batch_length(shaft_hz, defect_orders, values, n_snapshots)
    shaft = _as_rows(shaft_hz, n, "shaft_hz")
    reasons: list[list[str]] = [[] for _ in range(n)]
    for row in np.flatnonzero(~np.isfinite(shaft)):
        reasons[row].append("no shaft speed")
    for row in np.flatnonzero(np.isfinite(shaft) & (shaft <= 0)):
        reasons[row].append("shaft not turning")
    for row in np.flatnonzero(_geometry_missing(defect_orders, n)):
        reasons[row].append("no bearing geometry")
    if values is not None:
        for row in np.flatnonzero(~np.isfinite(np.asarray(values)).all(axis=1)):
            reasons[row].append("signal has missing samples")
    return ["; ".join(row) if row else None for row in reasons]


def _batch_length(
    shaft_hz: ArrayLike | None,
    defect_orders: Mapping[str, ArrayLike] | None,
    values: np.ndarray | None,
    n_snapshots: int | None,
) -> int:
    """Number of snapshots implied by whichever input carries it."""
    if n_snapshots is not None:
        return n_snapshots
    if values is not None:
        return int(np.shape(values)[0])
    for candidate in (shaft_hz, *(defect_orders or {}).values()):
        if candidate is not None and np.ndim(candidate) == 1:
            return len(candidate)  # type: ignore[arg-type]
    raise ValueError("cannot tell the number of snapshots: pass values or n_snapshots")


def _as_rows(values: ArrayLike | None, n: int, name: str = "input") -> np.ndarray:
    """A scalar or (n,) input as float64 (n,); None becomes all-NaN; raises naming ``name`` on another shape."""
    if values is None:
        return np.full(n, np.nan)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim > 1 or (array.ndim == 1 and len(array) not in (1, n)):
        raise ValueError(
            f"{name} must be a scalar or have one value per snapshot ({n}), got shape {array.shape}"
        )
    return np.broadcast_to(array, (n,))


def _known_or_nan(values: np.ndarray) -> np.ndarray:
    """Infinite or non-positive speeds and orders are unknown: NaN (a copy; the input is untouched)."""
    return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def _defect_rows(defect_orders: Mapping[str, ArrayLike] | None, n: int) -> np.ndarray:
    """Defect orders (n, 4) in DEFECT_NAMES order, NaN where unknown; raises on a key that is no defect."""
    given = defect_orders or {}
    unknown = sorted(set(given) - set(DEFECT_NAMES))
    if unknown:
        raise ValueError(
            f"defect_orders has unknown keys {unknown}: use {list(DEFECT_NAMES)} (features.bearings.defect_orders)"
        )
    columns = [_as_rows(given.get(name), n, f"defect_orders[{name!r}]") for name in DEFECT_NAMES]
    return _known_or_nan(np.stack(columns, axis=1))


def _geometry_missing(defect_orders: Mapping[str, ArrayLike] | None, n: int) -> np.ndarray:
    """Rows where any defect order is absent, NaN, infinite or not positive."""
    return np.isnan(_defect_rows(defect_orders, n)).any(axis=1)


@dataclass(frozen=True)
class _Plan:
    """Per-call constants derived from sample rate, snapshot length and config."""

    n_samples: int
    bin_hz: float
    weights: np.ndarray  # (2*n_bins, n_cols) float32, applied to squared interleaved re/im of the rfft
    chunk_weights: np.ndarray  # (2*n_bins // 256, 256, n_cols) float32: the whole chunks of weights
    band_measured: np.ndarray  # (n_bands,) False where the band lies entirely above Nyquist
    hf_measured: bool  # False where the HF split lies at or above Nyquist
    velocity_measured: bool
    env_k0: int  # envelope region: rfft bins [env_k0, env_k1)
    env_k1: int
    env_width: int  # bins demodulated per row (auto: the window; fixed band: the whole region)
    env_block: int  # auto band: bins per grid step (0: fixed band)
    env_n: int  # length of the decimated analytic signal

    @property
    def has_envelope(self) -> bool:
        """True when the envelope band holds at least one bin below Nyquist."""
        return self.env_k1 > self.env_k0

    @property
    def env_gain(self) -> float:
        """Factor from the decimated inverse FFT of one-sided bins to the analytic signal in g."""
        return 2.0 * self.env_n / self.n_samples


@dataclass(frozen=True)
class _Workspace:
    """Buffers reused by every block: fresh temporaries per block would cost page faults, not just copies."""

    centred: np.ndarray  # (rows, L) float32
    scratch: np.ndarray  # (rows, L) float32
    power: np.ndarray  # (rows, 2*n_bins) float32, squared re/im of the rfft
    band: np.ndarray  # (2*rows, env_n) complex64: raw band, then its whitened copy; the zero padding stays
    analytic: np.ndarray  # (2*rows, env_n) complex64: inverse FFT of band
    envelope: np.ndarray  # (2*rows, env_n) float32


def _make_workspace(rows: int, plan: _Plan) -> _Workspace:
    """Allocate the block buffers once per call."""
    n_bins = plan.n_samples // 2 + 1
    return _Workspace(
        centred=np.empty((rows, plan.n_samples), np.float32),
        scratch=np.empty((rows, plan.n_samples), np.float32),
        power=np.empty((rows, 2 * n_bins), np.float32),
        band=np.zeros((2 * rows, plan.env_n), np.complex64),
        analytic=np.empty((2 * rows, plan.env_n), np.complex64),
        envelope=np.empty((2 * rows, plan.env_n), np.float32),
    )


_WORKSPACES = threading.local()  # per thread: the last block workspace, reused by the next call


def _block_workspace(rows: int, plan: _Plan) -> _Workspace:
    """The block buffers of this thread's previous call when their shapes fit, else new ones (kept for the
    next call). A worker computing chunk after chunk then maps no fresh pages per call: some 6 MB of buffers
    allocated and freed per call cost a page fault per 4 KiB page (about 10 % of the work) wherever glibc
    returns freed memory to the system."""
    shape = (rows, plan.n_samples, plan.env_n, plan.env_width)  # band columns from env_width on stay 0
    cached = getattr(_WORKSPACES, "last", None)
    if cached is not None and cached[0] == shape:
        return cached[1]
    ws = _make_workspace(rows, plan)
    _WORKSPACES.last = (shape, ws)
    return ws


@dataclass(frozen=True)
class _Scan:
    """Per-row quantities of a chunk of rows, gathered block by block; the feature formulas then run once on
    the whole chunk (one numpy call per chunk for the small per-row arrays, not one per block)."""

    top: np.ndarray  # (rows,) float64: largest centred sample
    bottom: np.ndarray  # (rows,) float64: smallest
    residual: np.ndarray  # (rows,) float64: the mean left after centring
    moments: np.ndarray  # (rows, 3) float64: means of c^3, c^4, |c| of the centred samples c
    sums: np.ndarray  # (rows, n_cols) float64: weighted power sums (_spectral_sums)
    order_magnitude: (
        np.ndarray
    )  # (rows, bins) float32: |Hann spectrum| up to the highest order bin, bin 0 = 0
    envelope_mean: np.ndarray  # (rows,) float64: mean of the band's envelope (g / env_gain)
    envelope_square: np.ndarray  # (rows,) float64: mean square of the band's envelope
    raw_magnitude: np.ndarray  # (rows, bins) float32: |Hann envelope spectrum| of the band, bin 0 = 0
    whitened_magnitude: np.ndarray  # (rows, bins) float32: the same of the whitened band

    def rows(self, rows: slice) -> _Scan:
        """The same quantities for a slice of the rows (views: writing them fills this scan)."""
        return _Scan(*(getattr(self, field.name)[rows] for field in fields(self)))


def _make_scan(n_rows: int, plan: _Plan, lines: dict[str, np.ndarray]) -> _Scan:
    """Buffers of a chunk's per-row quantities; envelope spectra up to the highest bin that a line reads."""
    n_defect, limit = 2 * len(DEFECT_NAMES), plan.env_n // 2 - 1
    hi, floor_hi = lines["line_hi"], lines["floor_hi"]
    raw_bins = min(int(hi[:, :n_defect].max(initial=1)), limit) + 1
    whitened_bins = min(int(max(hi[:, n_defect:].max(initial=1), floor_hi.max(initial=1))), limit) + 1
    return _Scan(
        top=np.empty(n_rows),
        bottom=np.empty(n_rows),
        residual=np.empty(n_rows),
        moments=np.empty((n_rows, 3)),
        sums=np.empty((n_rows, plan.weights.shape[1])),
        order_magnitude=np.zeros((n_rows, int(lines["order_hi"].max(initial=1)) + 1), np.float32),
        envelope_mean=np.empty(n_rows),
        envelope_square=np.empty(n_rows),
        raw_magnitude=np.zeros((n_rows, raw_bins), np.float32),
        whitened_magnitude=np.zeros((n_rows, whitened_bins), np.float32),
    )


def _band_bins(freqs: np.ndarray, lo: float, hi: float, nyquist: float) -> np.ndarray:
    """Bins with lo <= f < hi; the Nyquist bin counts when hi reaches it."""
    return (freqs >= lo) & ((freqs < hi) | ((freqs == nyquist) & (hi >= nyquist)))


def _spectral_weights(
    freqs: np.ndarray, n_samples: int, nyquist: float, config: VibrationConfig
) -> np.ndarray:
    """Columns: band energies, HF energy, total, frequency moment, velocity², per squared re/im entry."""
    scale = np.full(freqs.size, 2.0 / n_samples**2)  # one-sided mean-square per bin
    scale[0] = 0.0  # the mean is removed
    if n_samples % 2 == 0:
        scale[-1] = 1.0 / n_samples**2
    with np.errstate(divide="ignore"):
        velocity_gain = (STANDARD_GRAVITY_M_S2 * 1000.0 / (2.0 * np.pi * freqs)) ** 2
    columns: list[np.ndarray] = [_band_bins(freqs, lo, hi, nyquist) * 1.0 for lo, hi in config.bands_hz]
    columns += [
        (freqs >= config.hf_split_hz) * 1.0,
        np.ones_like(freqs),
        freqs,
        np.where(_band_bins(freqs, *config.velocity_band_hz, nyquist), velocity_gain, 0.0),
    ]
    return np.repeat(np.stack(columns, axis=1) * scale[:, None], 2, axis=0).astype(np.float32)


def _make_plan(n_samples: int, sample_rate_hz: float, config: VibrationConfig) -> _Plan:
    """Spectral weights and envelope layout for snapshots of n_samples at sample_rate_hz."""
    freqs = sfft.rfftfreq(n_samples, 1.0 / sample_rate_hz)
    nyquist = sample_rate_hz / 2.0
    k0, k1, width, block = (
        _envelope_region(freqs, sample_rate_hz, config) if config.envelope else (1, 1, 0, 0)
    )
    weights = _spectral_weights(freqs, n_samples, nyquist, config)
    return _Plan(
        n_samples=n_samples,
        bin_hz=sample_rate_hz / n_samples,
        weights=weights,
        chunk_weights=weights[: len(weights) - len(weights) % _SUM_CHUNK].reshape(
            -1, _SUM_CHUNK, weights.shape[1]
        ),
        band_measured=np.array([lo < nyquist for lo, _ in config.bands_hz], dtype=bool),
        hf_measured=config.hf_split_hz < nyquist,
        velocity_measured=config.velocity_band_hz[0] < nyquist,
        env_k0=k0,
        env_k1=k1,
        env_width=width,
        env_block=block,
        env_n=sfft.next_fast_len(max(2 * width, _MIN_SAMPLES)),
    )


def _envelope_region(
    freqs: np.ndarray, sample_rate_hz: float, config: VibrationConfig
) -> tuple[int, int, int, int]:
    """Envelope bins [k0, k1) (DC and Nyquist excluded), bins demodulated per row, auto-band grid step."""
    if config.envelope_band_hz is None:
        lo, hi = (fraction * sample_rate_hz for fraction in _AUTO_REGION_FS)
        lo = min(lo, _AUTO_MAX_START_HZ)
    else:
        lo, hi = config.envelope_band_hz
    inside = np.flatnonzero((freqs >= lo) & (freqs < hi))
    inside = inside[(inside >= 1) & (inside <= freqs.size - 2)]
    if inside.size == 0:
        return 1, 1, 0, 0
    k0, k1 = int(inside[0]), int(inside[-1]) + 1
    width = round(_AUTO_WIDTH_FS * sample_rate_hz / freqs[1])
    if config.envelope_band_hz is not None or width < _AUTO_GRID or width >= k1 - k0:
        return k0, k1, k1 - k0, 0
    block = width // _AUTO_GRID
    return k0, k1, block * _AUTO_GRID, block


def _row_dot(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Row sums of a*b (float32, b like a; None: sums of a) in float32 chunks of 256, then float64: ~1e-7
    relative."""
    n, length = a.shape
    whole = length - length % _SUM_CHUNK
    chunks = a[:, :whole].reshape(n, -1, _SUM_CHUNK)  # a view: rows split into chunks
    other = _CHUNK_ONES if b is None else b[:, :whole].reshape(chunks.shape)
    total = np.vecdot(chunks, other).sum(axis=1, dtype=np.float64)
    if whole < length:
        total += np.vecdot(a[:, whole:], np.ones(length - whole, np.float32) if b is None else b[:, whole:])
    return total


def _row_sum(a: np.ndarray) -> np.ndarray:
    """Row sums of a (float32) like ``_row_dot(a)``, for a C-contiguous a of whole chunks as one BLAS
    matrix-vector product (about twice the speed; summed in another order, so not for the mean, whose
    rounding every spectrum inherits)."""
    n, length = a.shape
    if length % _SUM_CHUNK or not a.flags.c_contiguous:
        return _row_dot(a)
    return (a.reshape(-1, _SUM_CHUNK) @ _CHUNK_ONES).reshape(n, -1).sum(axis=1, dtype=np.float64)


def _subtract_rows(x: np.ndarray, row_values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = x - row_values[:, None] (float32, the same rounding as np.subtract): a copy, then a BLAS rank-1
    update of out in place. numpy broadcasts a per-row operand through a buffer, at half the speed."""
    np.copyto(out, x)
    if len(out) and out.flags.c_contiguous:
        updated = _blas_ger(-1.0, np.ones(out.shape[1], np.float32), row_values, a=out.T, overwrite_a=True)
        if np.shares_memory(updated, out):
            return out
    return np.subtract(x, row_values[:, None], out=out)


def _centred(x: np.ndarray, ws: _Workspace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x minus its mean rounded to float32 (the rest is corrected later), its max and min (row by row: the
    same in any batch).

    A constant row becomes exactly 0: it has no spread, whatever the rounding of its mean.
    """
    mean = (_row_dot(x) / x.shape[1]).astype(np.float32)
    centred = _subtract_rows(x, mean, ws.centred[: len(x)])
    top, bottom = centred.max(axis=1), centred.min(axis=1)
    flat = top == bottom
    if flat.any():
        centred[flat], top[flat], bottom[flat] = 0, 0, 0
    return centred, top.astype(np.float64), bottom.astype(np.float64)


def _raw_moments(centred: np.ndarray, top: np.ndarray, bottom: np.ndarray, ws: _Workspace) -> np.ndarray:
    """Row means of c^3, c^4 and |c| (float64 (3, n)) of the centred block, read while it is in cache.

    Rows whose largest |c| (from ``top`` and ``bottom``) lies outside _SAFE_SPAN are scaled by a power of two
    first: c^4 in float32 would overflow (|c| above about 1e9) or vanish (below about 1e-10)."""
    span = np.maximum(top, -bottom)
    unsafe = np.isfinite(span) & ((span > _SAFE_SPAN[1]) | ((span < _SAFE_SPAN[0]) & (span > 0)))  # not flat
    if unsafe.any():
        scale = np.where(unsafe, np.exp2(-np.round(np.log2(np.where(unsafe, span, 1.0)))), 1.0)
        moments = _raw_moments((centred * scale[:, None].astype(np.float32)), top * scale, bottom * scale, ws)
        return moments / np.stack([scale**3, scale**4, scale])
    n_samples = centred.shape[1]
    square = np.multiply(centred, centred, out=ws.scratch[: len(centred)])
    cube_sum, fourth_sum = _row_dot(square, centred), _row_dot(square, square)
    abs_sum = _row_sum(np.abs(centred, out=square))
    return np.stack([cube_sum, fourth_sum, abs_sum]) / n_samples


def _time_features(
    top: np.ndarray, bottom: np.ndarray, residual: np.ndarray, variance: np.ndarray, moments: np.ndarray
) -> dict[str, np.ndarray]:
    """Waveform statistics in g: moments about the exact mean, from data centred on an approximate one.

    ``residual`` is the mean left in the centred data c (float64), ``variance`` the spectrum's total power (the
    variance by Parseval) and ``moments`` the means of c^3, c^4, |c| (``_raw_moments``); with r = residual,
    the central moments E[(c - r)^k] expand into E[c^j], which float32 sums give to about 1e-7 for any sensor
    offset.
    """
    r = residual
    top, bottom = top - r, bottom - r
    s3, s4, mean_abs = moments.T
    m2 = np.maximum(variance, 0.0)
    s2 = m2 + r * r
    r2 = r * r
    m3 = s3 - 3.0 * r * s2 + 2.0 * r2 * r
    m4 = s4 - 4.0 * r * s3 + 6.0 * r2 * s2 - 3.0 * r2 * r2
    rms = np.sqrt(m2)
    peak = np.maximum(top, -bottom) + 0.0  # + 0.0: a flat snapshot's peak is 0, not -0
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "rms": rms,
            "peak": peak,
            "peak_to_peak": top - bottom,
            "crest_factor": peak / rms,
            "kurtosis": m4 / (m2 * m2),
            "skewness": m3 / (m2 * rms),
            "shape_factor": rms / mean_abs,
            "impulse_factor": peak / mean_abs,
        }


def _interleaved_power(spectrum: np.ndarray, ws: _Workspace) -> np.ndarray:
    """Squared real and imaginary parts of the rfft, interleaved (n, 2*n_bins) float32."""
    parts = spectrum.view(np.float32)
    return np.multiply(parts, parts, out=ws.power[: len(parts)])


def _spectral_sums(power: np.ndarray, plan: _Plan, out: np.ndarray) -> None:
    """Weighted power sums (n, n_cols) float64 into ``out``: float32 sums over chunks of 256 entries (one
    batched matrix product), then float64 (~1e-7 relative)."""
    n_rows, width = power.shape
    whole = width - width % _SUM_CHUNK
    chunks = power[:, :whole].reshape(n_rows, -1, _SUM_CHUNK).transpose(1, 0, 2)  # (chunks, n, 256): a view
    np.sum(chunks @ plan.chunk_weights, axis=0, dtype=np.float64, out=out)
    if whole < width:
        out += power[:, whole:] @ plan.weights[whole:]


def _spectral_features(sums: np.ndarray, plan: _Plan, config: VibrationConfig) -> dict[str, np.ndarray]:
    """Band energies (g²), spectral centroid (Hz), HF ratio, velocity RMS (mm/s) from the power sums."""
    n_rows, n_bands = len(sums), len(config.bands_hz)
    hf, total, moment, velocity = sums[:, n_bands:].T
    features = {
        band_feature_name(lo, hi): sums[:, j] if plan.band_measured[j] else np.full(n_rows, np.nan)
        for j, (lo, hi) in enumerate(config.bands_hz)
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        features["spectral_centroid_hz"] = moment / total
        features["hf_ratio"] = hf / total if plan.hf_measured else np.full(n_rows, np.nan)
    features["velocity_rms_mm_s"] = np.sqrt(velocity) if plan.velocity_measured else np.full(n_rows, np.nan)
    return features


def _window_bins(
    target_hz: np.ndarray, half_width_hz: np.ndarray, bin_hz: float, n_bins: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin windows [lo, hi] of target +- half width (clipped to bins 1..n_bins-2, at least the nearest bin)
    and where the target is readable (finite, its nearest bin inside 1..n_bins-2); unreadable: [1, 1]."""
    last = np.subtract(n_bins, 2.0)
    centre = np.rint(target_hz / bin_hz)
    readable = (centre >= 1.0) & (centre <= last)  # False for NaN
    unreadable = ~readable
    edges = []
    for edge in (np.subtract(target_hz, half_width_hz), np.add(target_hz, half_width_hz)):
        np.rint(np.divide(edge, bin_hz, out=edge), out=edge)
        np.minimum(np.maximum(edge, 1.0, out=edge), last, out=edge)
        np.copyto(edge, 1.0, where=unreadable)
        edges.append(edge.astype(np.intp))
    return edges[0], edges[1], readable


def _window_max(flat: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Largest of flat[lo..hi] per window (flat indices), one elementwise maximum per bin of the widest."""
    best = flat.take(lo)
    for step in range(1, int((hi - lo).max(initial=0)) + 1):
        np.maximum(best, flat.take(np.minimum(lo + step, hi)), out=best)
    return best


def _line_windows(
    shaft_hz: np.ndarray, orders: np.ndarray, plan: _Plan, config: VibrationConfig, extra: np.ndarray
) -> dict[str, np.ndarray]:
    """Bin windows of every line read, for a chunk of rows.

    ``order_*``: 1x, 2x, 3x shaft in the snapshot spectrum; ``line_*``: the 8 defect lines then the whitened
    lines in the envelope spectrum (+- the tolerance); ``floor_*``: +-10 % (at least +-8 bins) around each
    whitened line. ``orders`` (n, 4) in DEFECT_NAMES order; ``extra``: indices of the _EXTRA_LINES read.
    """
    tolerance, bin_hz = config.defect_tolerance, plan.bin_hz
    shaft_orders = shaft_hz[:, None] * np.array(_ORDERS, dtype=np.float64)
    snr_hz = _snr_targets_hz(shaft_hz, orders, extra)
    lines_hz = np.concatenate([orders * shaft_hz[:, None], 2.0 * orders * shaft_hz[:, None], snr_hz], axis=1)
    floor_half = np.maximum(_FLOOR_HALF_WIDTH * snr_hz, _FLOOR_MIN_BINS * bin_hz)
    # one call for all three kinds of window: orders | lines | floors, each against its own spectrum's bins
    n_orders, n_lines = shaft_orders.shape[1], lines_hz.shape[1]
    targets = np.concatenate([shaft_orders, lines_hz, snr_hz], axis=1)
    half = np.concatenate([shaft_orders * tolerance, lines_hz * tolerance, floor_half], axis=1)
    n_bins = np.full(targets.shape[1], plan.env_n // 2 + 1.0)  # float: compared with float bins
    n_bins[:n_orders] = plan.n_samples // 2 + 1
    lo, hi, ok = _window_bins(targets, half, bin_hz, n_bins)
    orders_end, lines_end = n_orders, n_orders + n_lines
    return {
        "order_lo": lo[:, :orders_end],
        "order_hi": hi[:, :orders_end],
        "order_ok": ok[:, :orders_end],
        "line_lo": lo[:, orders_end:lines_end],
        "line_hi": hi[:, orders_end:lines_end],
        "line_ok": ok[:, orders_end:lines_end],
        "floor_lo": lo[:, lines_end:],
        "floor_hi": hi[:, lines_end:],
    }


def _order_features(
    magnitude: np.ndarray, lines: dict[str, np.ndarray], plan: _Plan
) -> dict[str, np.ndarray]:
    """Amplitude (g) at 1x, 2x, 3x shaft speed, from |Hann spectrum| (``_Scan.order_magnitude``); NaN without
    a positive shaft speed."""
    peaks = _row_window_max(magnitude, lines["order_lo"], lines["order_hi"]) * (
        _HANN_AMPLITUDE / plan.n_samples
    )
    amplitudes = np.where(lines["order_ok"], peaks, np.nan)
    return {f"order_{k}x_amp": amplitudes[:, j] for j, k in enumerate(_ORDERS)}


def _band_starts(power: np.ndarray, plan: _Plan) -> np.ndarray:
    """Per row, first bin (offset from env_k0) of the band to demodulate: the most powerful auto window."""
    n_rows, block = len(power), plan.env_block
    if not block:
        return np.zeros(n_rows, dtype=np.intp)
    n_blocks = (plan.env_k1 - plan.env_k0) // block
    region = power[:, 2 * plan.env_k0 : 2 * (plan.env_k0 + n_blocks * block)]
    block_power = region.reshape(n_rows, n_blocks, 2 * block) @ np.ones(2 * block, np.float32)
    cumulative = np.zeros((n_rows, n_blocks + 1))
    np.cumsum(block_power, axis=1, out=cumulative[:, 1:])
    window_power = cumulative[:, _AUTO_GRID:] - cumulative[:, :-_AUTO_GRID]
    return window_power.argmax(axis=1) * block


def _analytic_envelopes(spectrum: np.ndarray, start: np.ndarray, plan: _Plan, ws: _Workspace) -> np.ndarray:
    """Envelopes (2n, env_n) in g / env_gain, mean not removed: rows :n of the band, n: of the whitened band."""
    n_rows, width = len(spectrum), plan.env_width
    first = plan.env_k0 + start
    if (first == first[0]).all():  # one band for the whole block: a slice, no gather
        bins = spectrum[:, first[0] : first[0] + width]
    else:
        region = spectrum[:, plan.env_k0 : plan.env_k1]
        bins = np.lib.stride_tricks.sliding_window_view(region, width, axis=1)[np.arange(n_rows), start]
    band = ws.band[: 2 * n_rows]  # columns from width on stay 0: the decimated inverse FFT's zero padding
    band[:n_rows, :width] = bins
    inverse = np.abs(bins)
    np.reciprocal(np.maximum(inverse, np.finfo(np.float32).tiny, out=inverse), out=inverse)  # 0 stays 0
    np.multiply(bins, inverse, out=band[n_rows:, :width])
    analytic = np.fft.ifft(band, axis=1, out=ws.analytic[: 2 * n_rows])
    return np.abs(analytic, out=ws.envelope[: 2 * n_rows])


def _snr_targets_hz(shaft_hz: np.ndarray, orders: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """Whitened-envelope lines in Hz (n, lines + 2 per sideband line + the extra family lines ``extra``,
    indices of _EXTRA_LINES); orders (n, 4) as DEFECT_NAMES."""
    column = {name: orders[:, j] for j, name in enumerate(DEFECT_NAMES)} | {"shaft": np.ones(len(orders))}
    targets = []
    for defect, harmonic, modulation, _ in _SNR_LINES.values():
        line = harmonic * column[defect]
        if modulation is None:
            targets.append(line)
        else:
            targets += [line - column[modulation], line + column[modulation]]
    targets += [_EXTRA_LINES[j][1] * column[_EXTRA_LINES[j][0]] for j in extra]
    return np.stack(targets, axis=1) * shaft_hz[:, None]


def _shared_harmonics(orders: np.ndarray, tolerance: float) -> np.ndarray:
    """(n, family harmonics in _FAMILY_HARMONICS order) True where a harmonic above the fundamental has a
    window (+- tolerance) that overlaps a harmonic of another family (SKF 6205: 2x BPFI and 3x BPFO)."""
    if len(orders) > 1:  # one geometry per bearing type: compare the distinct rows only
        # rows come in runs of one bearing: keep the first row of each run (NaN equal to NaN), then the
        # distinct ones of those (np.unique over every row would sort them all: slower than the comparison)
        same = (orders[1:] == orders[:-1]) | (np.isnan(orders[1:]) & np.isnan(orders[:-1]))
        heads = np.flatnonzero(np.concatenate([[True], ~same.all(axis=1)]))
        distinct, inverse = np.unique(orders[heads], axis=0, return_inverse=True)
        if len(distinct) < len(orders):
            run = np.repeat(np.arange(len(heads)), np.diff(heads, append=len(orders)))
            return _shared_harmonics(distinct, tolerance)[inverse.reshape(-1)[run]]
    order = {name: orders[:, j] for j, name in enumerate(DEFECT_NAMES)}
    harmonics = {d: order[d][:, None] * np.arange(1, top + 1) for d, top in _FAMILY_HARMONICS.items()}
    shared = []
    for defect, lines in harmonics.items():
        mine, overlap = lines[:, :, None], np.zeros(lines.shape, dtype=bool)
        for other in (d for d in harmonics if d != defect):
            theirs = harmonics[other][:, None, :]
            overlap |= (np.abs(mine - theirs) <= tolerance * (mine + theirs)).any(axis=2)
        overlap[:, 0] = False  # the fundamental always counts
        shared.append(overlap)
    return np.concatenate(shared, axis=1)


def _family_features(snr: np.ndarray, shared: np.ndarray) -> dict[str, np.ndarray]:
    """Harmonic family SNRs and family ratios (dB) from the whitened line SNRs (dB, ``_snr_targets_hz``
    order): a family is 10 log10 of the mean power ratio (line over its floor) of its readable harmonics,
    leaving out the ones it shares with another family (``_shared_harmonics``): they belong to neither."""
    used = np.flatnonzero(~shared.all(axis=0))  # harmonics counted in some row: the others add 0 everywhere
    power = 10.0 ** (snr[:, np.take(_FAMILY_COLUMNS, used)] / 10.0)
    readable = np.isfinite(power) & ~shared[:, used]
    features, families, first = {}, {}, 0
    for defect, top in _FAMILY_HARMONICS.items():
        mine = slice(*np.searchsorted(used, [first, first + top]))  # this family's harmonics among used
        first += top
        counted = readable[:, mine]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(counted, power[:, mine], 0.0).sum(axis=1) / counted.sum(axis=1)
            families[defect] = 10.0 * np.log10(mean)
        features[f"envelope__{defect}_harmonics_snr"] = families[defect]
    for name, (numerator, denominator) in _FAMILY_RATIOS.items():
        features[f"envelope__{name}"] = families[numerator] - families[denominator]
    return features


def _hann_magnitudes(spectrum: np.ndarray, out: np.ndarray) -> None:
    """|Hann-windowed spectrum| (float32) by the 3-tap convolution into ``out[:, 1:]`` (bins 1 .. width-1; bin 0
    is not written)."""
    last = out.shape[1] - 1
    hann = np.add(
        spectrum[:, :last], spectrum[:, 2 : last + 2]
    )  # 0.5 X[k] - 0.25 (X[k-1] + X[k+1]), in place
    hann *= -0.25
    hann += 0.5 * spectrum[:, 1 : last + 1]
    np.abs(hann, out=out[:, 1:])


def _row_window_max(matrix: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Largest of matrix[i, lo[i, j] .. hi[i, j]] per (row i, window j)."""
    row_start = np.arange(len(matrix))[:, None] * matrix.shape[1]
    return _window_max(matrix.ravel(), row_start + lo, row_start + hi)


def _median_network(n_values: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Compare-exchanges (i, j, min needed, max needed) that leave the median of n_values on position
    n_values // 2: Batcher's odd-even merge sort over the next power of two (Knuth, TAOCP 5.3.4), without the
    exchanges with positions past n_values (they would hold +inf: no-ops) or that cannot reach the median."""
    size = 1 << (n_values - 1).bit_length()
    exchanges = []
    merged = 1  # sorted runs of this length are merged into runs of twice it
    while merged < size:
        step = merged
        while step >= 1:
            for j in range(step % merged, size - step, 2 * step):
                for i in range(j, min(j + step, size - step)):
                    if i // (2 * merged) == (i + step) // (2 * merged) and i + step < n_values:
                        exchanges.append((i, i + step))
            step //= 2
        merged *= 2
    needed, kept = {n_values // 2}, []
    for i, j in reversed(exchanges):
        if i in needed or j in needed:
            kept.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(kept))


_FLOOR_MEDIAN = _median_network(_FLOOR_POINTS)  # 70 compare-exchanges


def _floor_medians(magnitude: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Median of 17 evenly spread bins of magnitude[i, lo[i, j] .. hi[i, j]] per (row i, window j).

    One elementwise min/max per compare-exchange of a median network over all windows at once (NaN counts as
    the largest value, as in np.partition): a per-window partition costs more in calls than in comparisons.
    """
    # flat indices (17, rows, windows), point-major: each operation runs along all the windows at once
    points = np.arange(_FLOOR_POINTS)[:, None, None] * (hi - lo) >> _FLOOR_SHIFT
    points += np.arange(len(magnitude))[:, None] * magnitude.shape[1] + lo
    values = list(magnitude.ravel().take(points))
    for i, j, low_needed, high_needed in _FLOOR_MEDIAN:
        low = np.fmin(values[i], values[j]) if low_needed else None  # fmin: NaN only if both are NaN
        if high_needed:
            values[j] = np.maximum(values[i], values[j])  # maximum: NaN if either is NaN
        if low is not None:
            values[i] = low
    return values[_FLOOR_POINTS // 2]


def _envelope_features(scan: _Scan, lines: dict[str, np.ndarray], plan: _Plan) -> dict[str, np.ndarray]:
    """Envelope-spectrum amplitudes (g) at the defect lines, envelope RMS (g), whitened-line SNRs (dB), from
    the chunk's envelope spectra (``_Scan``): the 8 defect lines are read in the band's, the SNR lines (each
    over the median within +-10 % of it) in the whitened band's. ``_WHITENED_SNR``: every whitened line."""
    n_defect = 2 * len(DEFECT_NAMES)
    lo, hi = lines["line_lo"], lines["line_hi"]
    peaks = np.concatenate(
        [
            _row_window_max(scan.raw_magnitude, lo[:, :n_defect], hi[:, :n_defect]),
            _row_window_max(scan.whitened_magnitude, lo[:, n_defect:], hi[:, n_defect:]),
        ],
        axis=1,
    )
    peaks[~lines["line_ok"]] = np.nan
    floor = _floor_medians(scan.whitened_magnitude, lines["floor_lo"], lines["floor_hi"])
    scale = _HANN_AMPLITUDE / plan.env_n * plan.env_gain
    features = {name: peaks[:, j] * scale for j, name in enumerate(_envelope_feature_names())}
    mean = scan.envelope_mean
    mean_square = scan.envelope_square - mean * mean
    features["envelope__rms"] = np.sqrt(np.maximum(mean_square, 0.0)) * plan.env_gain
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = 20.0 * np.log10(peaks[:, n_defect:] / floor)
    column = 0
    for name, (_, _, modulation, _) in _SNR_LINES.items():
        if modulation is None:
            features[f"envelope__{name}"] = snr[:, column]
            column += 1
        else:  # mean of the lower and upper sideband
            features[f"envelope__{name}"] = 0.5 * (snr[:, column] + snr[:, column + 1])
            column += 2
    features[_WHITENED_SNR] = snr  # every whitened line, for the harmonic families (whole batch at once)
    return features


def _scan_envelopes(envelope: np.ndarray, plan: _Plan, scan: _Scan) -> None:
    """Mean and mean square of the band's envelopes and |Hann envelope spectrum| of both kinds into ``scan``.

    ``envelope`` (2n, env_n): rows :n the band's envelope, rows n: the whitened band's (``_analytic_envelopes``).
    """
    n_rows = len(envelope) // 2
    spectra = sfft.rfft(envelope, axis=1)
    scan.envelope_mean[:] = spectra[:n_rows, 0].real.astype(np.float64) / plan.env_n
    raw = envelope[:n_rows]
    scan.envelope_square[:] = np.vecdot(raw, raw).astype(np.float64) / plan.env_n
    spectra[:, 0] = 0  # the envelope's mean removed
    _hann_magnitudes(spectra[:n_rows], scan.raw_magnitude)
    _hann_magnitudes(spectra[n_rows:], scan.whitened_magnitude)


def _scan_block(block: np.ndarray, plan: _Plan, ws: _Workspace, scan: _Scan) -> None:
    """The per-row quantities of one block of rows (the per-sample work: FFTs, sums, spectra read later) into
    ``scan`` (the block's rows)."""
    centred, top, bottom = _centred(block, ws)
    scan.top[:], scan.bottom[:] = top, bottom
    scan.moments[:] = _raw_moments(centred, top, bottom, ws).T  # while the centred block is in cache
    spectrum = sfft.rfft(centred, axis=1)
    scan.residual[:] = spectrum[:, 0].real.astype(np.float64) / plan.n_samples  # the mean left after centring
    spectrum[:, 0] = 0
    power = _interleaved_power(spectrum, ws)
    _spectral_sums(power, plan, out=scan.sums)
    _hann_magnitudes(spectrum, scan.order_magnitude)
    if plan.has_envelope:
        _scan_envelopes(_analytic_envelopes(spectrum, _band_starts(power, plan), plan, ws), plan, scan)


def _chunk_features(
    values: np.ndarray,
    lines: dict[str, np.ndarray],
    plan: _Plan,
    config: VibrationConfig,
    ws: _Workspace,
) -> dict[str, np.ndarray]:
    """All features of a chunk of rows: per-row quantities block by block (``_scan_block``), then the feature
    formulas once on the chunk; ``lines`` are the chunk's ``_line_windows``."""
    scan = _make_scan(len(values), plan, lines)
    for start in range(0, len(values), _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        _scan_block(values[rows], plan, ws, scan.rows(rows))
    variance = scan.sums[:, len(config.bands_hz) + 1]
    features = _time_features(scan.top, scan.bottom, scan.residual, variance, scan.moments)
    features |= _spectral_features(scan.sums, plan, config)
    features |= _order_features(scan.order_magnitude, lines, plan)
    if plan.has_envelope:
        features |= _envelope_features(scan, lines, plan)
    else:  # envelope band entirely above Nyquist: not measured (the harmonic families follow from the lines)
        names = [*_envelope_feature_names(), "envelope__rms", *(f"envelope__{name}" for name in _SNR_LINES)]
        features |= {name: np.full(len(values), np.nan) for name in names}
    return features


def _validated_values(values: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Values as a C-contiguous float32 (n, L) array; raises on wrong shape or sample rate.

    Wider inputs (float64, int32, int64) are centred on each row's mean before they are rounded to float32:
    a large offset (a 24-bit ADC's counts, a gravity-biased float64 signal) would otherwise eat the float32
    digits of the vibration. The features do not depend on the offset."""
    given = np.asarray(values)
    if given.ndim == 2 and given.dtype.itemsize > 4 and given.dtype.kind in "fiu" and given.size:
        mean = given.mean(axis=1, dtype=np.float64, keepdims=True)
        centred = np.empty(given.shape, np.float32)
        with np.errstate(invalid="ignore", over="ignore"):  # a row with inf or NaN: its features are NaN
            np.subtract(given, mean, out=centred, casting="unsafe")
        given = centred
    values = np.ascontiguousarray(given, dtype=np.float32)
    if values.ndim != 2:
        raise ValueError(f"values must be 2-D (n_snapshots, n_samples), got shape {values.shape}")
    if values.shape[1] < _MIN_SAMPLES:
        raise ValueError(f"snapshots need at least {_MIN_SAMPLES} samples, got {values.shape[1]}")
    if not (np.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    return values


def vibration_features(
    values: np.ndarray,
    sample_rate_hz: float,
    shaft_hz: ArrayLike | None = None,
    defect_orders: Mapping[str, ArrayLike] | None = None,
    config: VibrationConfig = DEFAULT_VIBRATION_CONFIG,
) -> dict[str, np.ndarray]:
    """Vibration features (suffix -> float64 (n,)) of a batch of acceleration snapshots in g.

    ``shaft_hz`` (n,) or scalar, NaN where unknown; ``defect_orders`` maps bpfo/bpfi/bsf/ftf to orders (n,) or
    scalars, NaN where the geometry is unknown (see ``features.bearings.defect_orders``). Units are listed in
    ``VIBRATION_FEATURES``; ``nan_reasons`` explains NaN speed-related features.
    """
    values = _validated_values(values, sample_rate_hz)
    n_rows = values.shape[0]
    plan = _make_plan(values.shape[1], float(sample_rate_hz), config)
    shaft = _known_or_nan(_as_rows(shaft_hz, n_rows, "shaft_hz"))
    orders = _defect_rows(defect_orders, n_rows)
    ws = _block_workspace(min(n_rows, _BLOCK_ROWS), plan)
    output = {name: np.empty(n_rows) for name in vibration_feature_names(config)}
    shared = _shared_harmonics(orders, config.defect_tolerance)
    whitened = np.full((n_rows, _N_SNR_TARGETS + len(_EXTRA_LINES)), np.nan)
    for start in range(0, n_rows, _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        # extra family lines that some row of the chunk counts (a shared harmonic is never used: not read)
        extra = np.flatnonzero(~shared[rows][:, _EXTRA_IN_FAMILY].all(axis=0))
        chunk_lines = _line_windows(shaft[rows], orders[rows], plan, config, extra)
        chunk = _chunk_features(values[rows], chunk_lines, plan, config, ws)
        if _WHITENED_SNR in chunk:
            snr = chunk.pop(_WHITENED_SNR)
            whitened[rows, :_N_SNR_TARGETS] = snr[:, :_N_SNR_TARGETS]
            whitened[rows, _N_SNR_TARGETS + extra] = snr[:, _N_SNR_TARGETS:]
        for name, column in chunk.items():
            output[name][rows] = column
    output.update(_family_features(whitened, shared))  # NaN lines (no envelope, speed or geometry) stay NaN
    return output


def _batch_envelopes(
    values: np.ndarray, sample_rate_hz: float, config: VibrationConfig
) -> tuple[_Plan, np.ndarray, np.ndarray]:
    """Plan, envelopes (2n, env_n; raw then whitened, g / env_gain, mean kept) and first band bins (n,)."""
    values = _validated_values(values, sample_rate_hz)
    plan = _make_plan(values.shape[1], float(sample_rate_hz), config)
    if not plan.has_envelope:
        raise ValueError("the envelope band lies entirely above Nyquist")
    ws = _make_workspace(len(values), plan)
    spectrum = sfft.rfft(_centred(values, ws)[0], axis=1)
    spectrum[:, 0] = 0
    start = _band_starts(_interleaved_power(spectrum, ws), plan)
    return plan, _analytic_envelopes(spectrum, start, plan, ws), start + plan.env_k0


def envelope_bands_hz(
    values: np.ndarray, sample_rate_hz: float, config: VibrationConfig = DEFAULT_VIBRATION_CONFIG
) -> tuple[np.ndarray, np.ndarray]:
    """Per snapshot, the frequencies (Hz) of the first and last rfft bins demodulated for the envelope (NaN for
    a snapshot with missing samples: it has no band)."""
    plan, _, first = _batch_envelopes(values, sample_rate_hz, config)
    first_hz = np.where(np.isfinite(np.asarray(values)).all(axis=-1), first * plan.bin_hz, np.nan)
    return first_hz, first_hz + (plan.env_width - 1) * plan.bin_hz


def amplitude_spectrum(values: ArrayLike, sample_rate_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and Hann-windowed amplitude spectra (n, n_freqs) of snapshots, their means removed, for
    plots: a sine of amplitude A on a bin reads A at its frequency, in the unit of ``values`` (g)."""
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    window = np.hanning(x.shape[1])
    spectrum = np.abs(sfft.rfft((x - x.mean(axis=1, keepdims=True)) * window, axis=1)) * 2 / window.sum()
    return sfft.rfftfreq(x.shape[1], 1 / sample_rate_hz), spectrum


def envelope_spectrum(
    values: np.ndarray,
    sample_rate_hz: float,
    config: VibrationConfig = DEFAULT_VIBRATION_CONFIG,
    whitened: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and Hann-windowed envelope-spectrum amplitudes (n, n_freqs), for plots.

    In g; with ``whitened``, the cepstrum pre-whitened envelope spectrum that the ``_snr`` features read
    (dimensionless: divide by its median to see dB above noise).
    """
    plan, envelopes, _ = _batch_envelopes(values, sample_rate_hz, config)
    n_rows = len(envelopes) // 2
    raw = sfft.rfft(envelopes[n_rows:] if whitened else envelopes[:n_rows], axis=1)
    raw[:, 0] = 0  # the envelope's mean removed
    hann = 0.5 * raw[:, 1:-1] - 0.25 * (raw[:, :-2] + raw[:, 2:])
    freqs = np.arange(1, raw.shape[1] - 1) * plan.bin_hz
    return freqs, np.abs(hann).astype(np.float64) * (_HANN_AMPLITUDE / plan.env_n * plan.env_gain)

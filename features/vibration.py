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
  FFT of only the band's positive-frequency bins (shifted to baseband, decimated; the envelope's magnitude
  is unchanged by the shift), envelope = |analytic| minus its mean, then its spectrum.
* Automatic envelope band (``VibrationConfig.envelope_band_hz is None``), per snapshot: inside the search
  region 0.1*fs..0.4*fs (the usable band of a 2.56x-oversampled acquisition, above most shaft and gear
  harmonics), the 0.1*fs-wide window with the largest power (start searched on a grid of 1/8 of the width)
  is taken as the resonance band if its mean power density is at least 2x the region's; otherwise the whole
  region 0.1*fs..0.4*fs is demodulated. ``envelope_bands_hz`` reports the band chosen per snapshot. The
  envelope is sampled at 2x the region width, so its spectrum reaches about 0.3*fs (fixed band: its width).

All arithmetic is float32 (``scipy.fft`` keeps complex64); rows are processed in cache-sized blocks, each
block fully vectorised. Each snapshot's features depend on that snapshot only (the same in any batch, up to
float32 rounding of the BLAS band sums).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from numpy.typing import ArrayLike

from features.bearings import DEFECT_NAMES

STANDARD_GRAVITY_M_S2 = 9.80665
_BLOCK_ROWS = 256
_AUTO_REGION_FS = (0.1, 0.4)
_AUTO_WIDTH_FS = 0.1
_AUTO_DOMINANCE = 2.0
_MIN_SAMPLES = 16
_ORDERS = (1, 2, 3)
_AUTO_GRID = 8  # auto band: window start searched on a grid of 1/8 of its width
_HANN_AMPLITUDE = 4.0  # 2 (one-sided) / 0.5 (Hann coherent gain): |X_hann| * 4 / N is amplitude


@dataclass(frozen=True)
class VibrationConfig:
    """Settings of the vibration feature set (frequencies in Hz)."""

    bands_hz: tuple[tuple[float, float], ...] = ((10, 500), (500, 1000), (1000, 2000), (2000, 5000))
    envelope_band_hz: tuple[float, float] | None = None  # None: automatic, see module docstring
    defect_tolerance: float = 0.02  # relative speed/slip tolerance when reading a peak
    hf_split_hz: float = 1000.0  # hf_ratio = energy at or above this / total
    velocity_band_hz: tuple[float, float] = (10.0, 1000.0)

    def __post_init__(self) -> None:
        """Reject settings that cannot describe a frequency band."""
        for band in (*self.bands_hz, self.velocity_band_hz, self.envelope_band_hz):
            if band is not None and not (0 <= band[0] < band[1]):
                raise ValueError(f"band {band} must satisfy 0 <= lo < hi")
        if self.velocity_band_hz[0] <= 0:
            raise ValueError("velocity_band_hz must start above 0 Hz (velocity = acceleration / 2 pi f)")
        if not 0 <= self.defect_tolerance < 0.5:
            raise ValueError("defect_tolerance must be in [0, 0.5)")
        if self.hf_split_hz <= 0:
            raise ValueError("hf_split_hz must be positive")


DEFAULT_VIBRATION_CONFIG = VibrationConfig()


@dataclass(frozen=True)
class FeatureInfo:
    """Unit and one-line crew-readable description of a vibration feature."""

    unit: str  # "g", "g²", "mm/s", "Hz", "" (ratio)
    description: str


def _envelope_info(defect: str, harmonic: int) -> FeatureInfo:
    """Description of an envelope-spectrum amplitude at a defect frequency (harmonic 1 or 2)."""
    parts = {
        "bpfo": "outer-race fault",
        "bpfi": "inner-race fault",
        "bsf": "rolling-element (ball) fault",
        "ftf": "cage fault",
    }
    line = f"{'2×' if harmonic == 2 else ''}{defect.upper()}"
    note = " (a ball defect strikes both races each spin)" if (defect, harmonic) == ("bsf", 2) else ""
    return FeatureInfo("g", f"{parts[defect]} signal (envelope spectrum amplitude at {line}){note}")


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
    """Frequency for a feature name: 500 -> '500', 2.5 -> '2p5'."""
    return f"{float(value):g}".replace(".", "p")


def band_feature_name(lo_hz: float, hi_hz: float) -> str:
    """Feature suffix of a band energy, e.g. ``band_energy__500_1000hz``."""
    return f"band_energy__{_format_hz(lo_hz)}_{_format_hz(hi_hz)}hz"


def _envelope_feature_names() -> list[str]:
    """Suffixes of the envelope defect amplitudes, fundamental then second harmonic."""
    return [f"envelope__{d}{'_2x' if h == 2 else ''}_amp" for h in (1, 2) for d in DEFECT_NAMES]


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
    ]


def nan_reasons(
    shaft_hz: ArrayLike | None,
    defect_orders: Mapping[str, ArrayLike] | None,
    values: np.ndarray | None = None,
    n_snapshots: int | None = None,
) -> list[str | None]:
    """Per snapshot, why speed-related features are NaN ("no shaft speed", ...; "; "-joined), or None.

    "no shaft speed" (NaN/None) and "shaft not turning" (<= 0 Hz) explain NaN order and envelope-defect
    amplitudes; "no bearing geometry" explains NaN envelope-defect amplitudes; "signal has missing samples"
    (NaN in ``values``, if given) explains NaN in every feature. A defect line beyond the analysed spectrum
    is also NaN but is not listed (it depends on the sample rate, not on the row's inputs).
    """
    n = _batch_length(shaft_hz, defect_orders, values, n_snapshots)
    shaft = _as_rows(shaft_hz, n)
    reasons: list[list[str]] = [[] for _ in range(n)]
    for row in np.flatnonzero(np.isnan(shaft)):
        reasons[row].append("no shaft speed")
    for row in np.flatnonzero(shaft <= 0):
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


def _as_rows(values: ArrayLike | None, n: int) -> np.ndarray:
    """Broadcast a scalar or (n,) input to float64 (n,); None becomes all-NaN."""
    if values is None:
        return np.full(n, np.nan)
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (n,))


def _geometry_missing(defect_orders: Mapping[str, ArrayLike] | None, n: int) -> np.ndarray:
    """Rows where any defect order is absent or NaN."""
    if defect_orders is None:
        return np.ones(n, dtype=bool)
    missing = np.zeros(n, dtype=bool)
    for name in DEFECT_NAMES:
        missing |= np.isnan(_as_rows(defect_orders.get(name), n))
    return missing


@dataclass(frozen=True)
class _Plan:
    """Per-call constants derived from sample rate, snapshot length and config."""

    n_samples: int
    bin_hz: float
    weights: np.ndarray  # (2*n_bins, n_cols) float32, applied to squared interleaved re/im of the rfft
    band_measured: np.ndarray  # (n_bands,) False where the band lies entirely above Nyquist
    velocity_measured: bool
    env_k0: int  # envelope region: rfft bins [env_k0, env_k1)
    env_k1: int
    env_block: int  # auto band: bins per power block (0: fixed band)
    env_blocks: int  # auto band: blocks per window
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
    analytic: np.ndarray  # (rows, env_n) complex64
    envelope: np.ndarray  # (rows, env_n) float32


def _make_workspace(rows: int, plan: _Plan) -> _Workspace:
    """Allocate the block buffers once per call."""
    n_bins = plan.n_samples // 2 + 1
    return _Workspace(
        centred=np.empty((rows, plan.n_samples), np.float32),
        scratch=np.empty((rows, plan.n_samples), np.float32),
        power=np.empty((rows, 2 * n_bins), np.float32),
        analytic=np.empty((rows, plan.env_n), np.complex64),
        envelope=np.empty((rows, plan.env_n), np.float32),
    )


def _band_bins(freqs: np.ndarray, lo: float, hi: float, nyquist: float) -> np.ndarray:
    """Bins with lo <= f < hi; the Nyquist bin counts when hi reaches it."""
    return (freqs >= lo) & ((freqs < hi) | ((freqs == nyquist) & (hi >= nyquist)))


def _spectral_weights(
    freqs: np.ndarray, n_samples: int, nyquist: float, config: VibrationConfig
) -> np.ndarray:
    """Columns: band energies, HF energy, total, frequency moment, velocity², per squared re/im entry."""
    scale = np.full(freqs.size, 2.0 / n_samples**2)  # one-sided mean-square per bin
    scale[0] = 1.0 / n_samples**2
    if n_samples % 2 == 0:
        scale[-1] = 1.0 / n_samples**2
    with np.errstate(divide="ignore"):
        velocity_gain = (STANDARD_GRAVITY_M_S2 * 1000.0 / (2.0 * np.pi * freqs)) ** 2
    columns = [_band_bins(freqs, lo, hi, nyquist) * 1.0 for lo, hi in config.bands_hz]
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
    k0, k1, block, blocks = _envelope_region(freqs, sample_rate_hz, config)
    return _Plan(
        n_samples=n_samples,
        bin_hz=sample_rate_hz / n_samples,
        weights=_spectral_weights(freqs, n_samples, nyquist, config),
        band_measured=np.array([lo < nyquist for lo, _ in config.bands_hz], dtype=bool),
        velocity_measured=config.velocity_band_hz[0] < nyquist,
        env_k0=k0,
        env_k1=k1,
        env_block=block,
        env_blocks=blocks,
        env_n=sfft.next_fast_len(max(2 * (k1 - k0), _MIN_SAMPLES)),
    )


def _envelope_region(
    freqs: np.ndarray, sample_rate_hz: float, config: VibrationConfig
) -> tuple[int, int, int, int]:
    """Envelope bins [k0, k1) (DC and Nyquist excluded); auto band: bins per block, blocks per window."""
    if config.envelope_band_hz is None:
        lo, hi = (fraction * sample_rate_hz for fraction in _AUTO_REGION_FS)
    else:
        lo, hi = config.envelope_band_hz
    inside = np.flatnonzero((freqs >= lo) & (freqs < hi))
    inside = inside[(inside >= 1) & (inside <= freqs.size - 2)]
    if inside.size == 0:
        return 1, 1, 0, 0
    k0, k1 = int(inside[0]), int(inside[-1]) + 1
    width = round(_AUTO_WIDTH_FS * sample_rate_hz / freqs[1])
    if config.envelope_band_hz is not None or width < _AUTO_GRID or width >= k1 - k0:
        return k0, k1, 0, 0
    block = width // _AUTO_GRID
    return k0, k1, block, width // block


def _time_features(x: np.ndarray, ws: _Workspace) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Waveform statistics in g (moments of the mean-removed signal) and the mean-removed block."""
    n_rows, n_samples = x.shape
    mean = x.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)  # exact for a constant row
    centred = np.subtract(x, mean, out=ws.centred[:n_rows])
    top = centred.max(axis=1).astype(np.float64)
    bottom = centred.min(axis=1).astype(np.float64)
    square = np.multiply(centred, centred, out=ws.scratch[:n_rows])
    m2 = square.mean(axis=1).astype(np.float64)
    m3 = np.vecdot(square, centred).astype(np.float64) / n_samples
    m4 = np.vecdot(square, square).astype(np.float64) / n_samples
    mean_abs = np.abs(centred, out=square).mean(axis=1).astype(np.float64)
    rms = np.sqrt(m2)
    peak = np.maximum(top, -bottom)
    with np.errstate(divide="ignore", invalid="ignore"):
        features = {
            "rms": rms,
            "peak": peak,
            "peak_to_peak": top - bottom,
            "crest_factor": peak / rms,
            "kurtosis": m4 / (m2 * m2),
            "skewness": m3 / (m2 * rms),
            "shape_factor": rms / mean_abs,
            "impulse_factor": peak / mean_abs,
        }
    return features, centred


def _interleaved_power(spectrum: np.ndarray, ws: _Workspace) -> np.ndarray:
    """Squared real and imaginary parts of the rfft, interleaved (n, 2*n_bins) float32."""
    parts = spectrum.view(np.float32)
    return np.multiply(parts, parts, out=ws.power[: len(parts)])


def _spectral_features(power: np.ndarray, plan: _Plan, config: VibrationConfig) -> dict[str, np.ndarray]:
    """Band energies (g²), spectral centroid (Hz), HF ratio, velocity RMS (mm/s) from the power spectrum."""
    sums = (power @ plan.weights).astype(np.float64)
    n_rows, n_bands = len(sums), len(config.bands_hz)
    hf, total, moment, velocity = sums[:, n_bands:].T
    features = {
        band_feature_name(lo, hi): sums[:, j] if plan.band_measured[j] else np.full(n_rows, np.nan)
        for j, (lo, hi) in enumerate(config.bands_hz)
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        features["spectral_centroid_hz"] = moment / total
        features["hf_ratio"] = hf / total
    features["velocity_rms_mm_s"] = np.sqrt(velocity) if plan.velocity_measured else np.full(n_rows, np.nan)
    return features


def _peak_amplitudes(
    spectrum: np.ndarray, target_hz: np.ndarray, tolerance: float, bin_hz: float, scale: float
) -> np.ndarray:
    """Largest Hann-windowed |X| * scale within target_hz*(1 +- tol) per (row, target); NaN if unreadable."""
    n_bins = spectrum.shape[1]
    out = np.full(target_hz.shape, np.nan)
    with np.errstate(invalid="ignore"):
        centre = np.rint(target_hz / bin_hz)
        readable = np.isfinite(centre) & (centre >= 1) & (centre <= n_bins - 2)
    rows, cols = np.nonzero(readable)
    if rows.size == 0:
        return out
    target = target_hz[rows, cols]
    lo = np.clip(np.rint(target * (1.0 - tolerance) / bin_hz), 1, n_bins - 2).astype(np.intp)
    hi = np.clip(np.rint(target * (1.0 + tolerance) / bin_hz), 1, n_bins - 2).astype(np.intp)
    bins = np.minimum(lo[:, None] + np.arange(int((hi - lo).max()) + 1), hi[:, None])  # repeats hi: max-safe
    row = rows[:, None]
    hann = 0.5 * spectrum[row, bins] - 0.25 * (spectrum[row, bins - 1] + spectrum[row, bins + 1])
    out[rows, cols] = np.abs(hann).max(axis=1) * scale
    return out


def _order_features(
    spectrum: np.ndarray, shaft_hz: np.ndarray, plan: _Plan, config: VibrationConfig
) -> dict[str, np.ndarray]:
    """Amplitude (g) at 1x, 2x, 3x shaft speed; NaN without a positive shaft speed."""
    targets = shaft_hz[:, None] * np.array(_ORDERS, dtype=np.float64)
    scale = _HANN_AMPLITUDE / plan.n_samples
    amplitudes = _peak_amplitudes(spectrum, targets, config.defect_tolerance, plan.bin_hz, scale)
    return {f"order_{k}x_amp": amplitudes[:, j] for j, k in enumerate(_ORDERS)}


def _auto_band(power: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Per row, [first, last] offsets (bins from env_k0) of the dominant-resonance window, or the region."""
    n_rows, block, blocks = len(power), plan.env_block, plan.env_blocks
    n_blocks = (plan.env_k1 - plan.env_k0) // block
    region = power[:, 2 * plan.env_k0 : 2 * (plan.env_k0 + n_blocks * block)]
    block_power = region.reshape(n_rows, n_blocks, 2 * block).sum(axis=2)
    cumulative = np.zeros((n_rows, n_blocks + 1))
    np.cumsum(block_power, axis=1, out=cumulative[:, 1:])
    window_power = cumulative[:, blocks:] - cumulative[:, :-blocks]
    start = window_power.argmax(axis=1)
    best = window_power[np.arange(n_rows), start]
    with np.errstate(divide="ignore", invalid="ignore"):
        dominant = best / blocks >= _AUTO_DOMINANCE * cumulative[:, -1] / n_blocks
    first = np.where(dominant, start * block, 0)
    last = np.where(dominant, (start + blocks) * block - 1, plan.env_k1 - plan.env_k0 - 1)
    return first, last


def _envelope_band(power: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Per row, [first, last] offsets (bins from env_k0) of the band to demodulate."""
    if plan.env_block:
        return _auto_band(power, plan)
    n_rows = len(power)
    return np.zeros(n_rows, dtype=np.intp), np.full(n_rows, plan.env_k1 - plan.env_k0 - 1)


def _analytic_envelope(
    spectrum: np.ndarray, first: np.ndarray, last: np.ndarray, plan: _Plan, ws: _Workspace
) -> np.ndarray:
    """Mean-removed envelope (units of g / env_gain) from the band's bins shifted to baseband, decimated."""
    region = spectrum[:, plan.env_k0 : plan.env_k1]
    n_rows, n_region = region.shape
    analytic = ws.analytic[:n_rows]
    analytic[:, :n_region] = region
    analytic[:, n_region:] = 0
    narrow = np.flatnonzero(last - first < n_region - 1)  # rows demodulating an auto band, not the region
    if narrow.size:
        width = plan.env_block * plan.env_blocks
        windows = np.lib.stride_tricks.sliding_window_view(region, width, axis=1)
        analytic[narrow, :width] = windows[narrow, first[narrow]]
        analytic[narrow, width:n_region] = 0
    analytic = sfft.ifft(analytic, axis=1, overwrite_x=True)
    envelope = np.abs(analytic, out=ws.envelope[:n_rows])
    envelope -= envelope.mean(axis=1, keepdims=True)
    return envelope


def _envelope_features(
    envelope: np.ndarray, defect_hz: np.ndarray, plan: _Plan, config: VibrationConfig
) -> dict[str, np.ndarray]:
    """Envelope-spectrum amplitudes (g) at each defect frequency (n, 8 targets) and envelope RMS (g)."""
    spectrum = sfft.rfft(envelope, axis=1)
    scale = _HANN_AMPLITUDE / plan.env_n * plan.env_gain
    amplitudes = _peak_amplitudes(spectrum, defect_hz, config.defect_tolerance, plan.bin_hz, scale)
    features = {name: amplitudes[:, j] for j, name in enumerate(_envelope_feature_names())}
    mean_square = np.vecdot(envelope, envelope).astype(np.float64) / plan.env_n
    features["envelope__rms"] = np.sqrt(mean_square) * plan.env_gain
    return features


def _block_features(
    block: np.ndarray,
    shaft_hz: np.ndarray,
    defect_hz: np.ndarray,
    plan: _Plan,
    config: VibrationConfig,
    ws: _Workspace,
) -> dict[str, np.ndarray]:
    """All features of one block of rows; defect_hz (rows, 8) are the envelope targets in Hz."""
    features, centred = _time_features(block, ws)
    spectrum = sfft.rfft(centred, axis=1)
    power = _interleaved_power(spectrum, ws)
    features |= _spectral_features(power, plan, config)
    features |= _order_features(spectrum, shaft_hz, plan, config)
    if plan.has_envelope:
        envelope = _analytic_envelope(spectrum, *_envelope_band(power, plan), plan, ws)
        features |= _envelope_features(envelope, defect_hz, plan, config)
    else:  # envelope band entirely above Nyquist: not measured
        features |= {
            name: np.full(len(block), np.nan) for name in [*_envelope_feature_names(), "envelope__rms"]
        }
    return features


def _defect_targets_hz(
    shaft_hz: np.ndarray, defect_orders: Mapping[str, ArrayLike] | None, n_rows: int
) -> np.ndarray:
    """Envelope targets (n, 8) in Hz: each defect order times shaft speed, then twice that."""
    orders = np.stack([_as_rows((defect_orders or {}).get(name), n_rows) for name in DEFECT_NAMES], axis=1)
    return np.concatenate([orders, 2.0 * orders], axis=1) * shaft_hz[:, None]


def _validated_values(values: np.ndarray, sample_rate_hz: float) -> np.ndarray:
    """Values as a C-contiguous float32 (n, L) array; raises on wrong shape or sample rate."""
    values = np.ascontiguousarray(values, dtype=np.float32)
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
    shaft = _as_rows(shaft_hz, n_rows)
    defect_hz = _defect_targets_hz(shaft, defect_orders, n_rows)
    ws = _make_workspace(min(n_rows, _BLOCK_ROWS), plan)
    output = {name: np.empty(n_rows) for name in vibration_feature_names(config)}
    for start in range(0, n_rows, _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        for name, column in _block_features(
            values[rows], shaft[rows], defect_hz[rows], plan, config, ws
        ).items():
            output[name][rows] = column
    return output


def _batch_envelope(
    values: np.ndarray, sample_rate_hz: float, config: VibrationConfig
) -> tuple[_Plan, np.ndarray, np.ndarray, np.ndarray]:
    """Plan, mean-removed envelope (g / env_gain) and band [first, last] rfft bins of a whole batch."""
    values = _validated_values(values, sample_rate_hz)
    plan = _make_plan(values.shape[1], float(sample_rate_hz), config)
    if not plan.has_envelope:
        raise ValueError("the envelope band lies entirely above Nyquist")
    ws = _make_workspace(len(values), plan)
    _, centred = _time_features(values, ws)
    spectrum = sfft.rfft(centred, axis=1)
    first, last = _envelope_band(_interleaved_power(spectrum, ws), plan)
    envelope = _analytic_envelope(spectrum, first, last, plan, ws)
    return plan, envelope, first + plan.env_k0, last + plan.env_k0


def envelope_bands_hz(
    values: np.ndarray, sample_rate_hz: float, config: VibrationConfig = DEFAULT_VIBRATION_CONFIG
) -> tuple[np.ndarray, np.ndarray]:
    """Per snapshot, the frequencies (Hz) of the first and last rfft bins demodulated for the envelope."""
    plan, _, first, last = _batch_envelope(values, sample_rate_hz, config)
    return first * plan.bin_hz, last * plan.bin_hz


def envelope_spectrum(
    values: np.ndarray, sample_rate_hz: float, config: VibrationConfig = DEFAULT_VIBRATION_CONFIG
) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies (Hz) and Hann-windowed envelope-spectrum amplitudes (g, shape (n, n_freqs)), for plots."""
    plan, envelope, _, _ = _batch_envelope(values, sample_rate_hz, config)
    raw = sfft.rfft(envelope, axis=1)
    hann = 0.5 * raw[:, 1:-1] - 0.25 * (raw[:, :-2] + raw[:, 2:])
    freqs = np.arange(1, raw.shape[1] - 1) * plan.bin_hz
    return freqs, np.abs(hann).astype(np.float64) * (_HANN_AMPLITUDE / plan.env_n * plan.env_gain)

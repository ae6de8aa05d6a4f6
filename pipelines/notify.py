"""Tell someone when machines newly enter the list: an optional webhook that posts them as JSON.

Configured from the environment when a flow or command starts (never at import):

- ``WEARCAST_WEBHOOK_URL``: where to POST (http or https); unset means no notification.
- ``WEARCAST_WEBHOOK_SECRET``: the shared secret. The body is signed with HMAC-SHA256 and the signature sent as
  ``X-Wearcast-Signature: sha256=<hex digest of the raw body>``; the receiver recomputes it over the bytes it
  received and compares in constant time (``hmac.compare_digest``). Without a secret the post is unsigned (and a
  warning is logged).
- ``WEARCAST_WEBHOOK_TIMEOUT_S``: seconds to wait for a connection or an answer (default 10).

Every post also carries ``X-Wearcast-Delivery``, an id derived from the body: retries and redeliveries of one
payload share it, so a receiver can drop a payload it already has (a timed-out attempt may have arrived).

Delivery never raises: connection errors, timeouts, 5xx and 429 are retried with exponential backoff, other
answers (4xx, redirects) are not. When every attempt fails the exact body is written to an outbox folder as a
JSON file, and ``redeliver_outbox`` posts those files later. Each attempt is logged on the
``wearcast.notify`` logger (with the fields also in the record's ``extra``); the URL is logged as scheme and
host only, since webhook URLs often carry a token in their path.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, SecretStr

from features.errors import InputError

log = logging.getLogger("wearcast.notify")

URL_VAR = "WEARCAST_WEBHOOK_URL"
SECRET_VAR = "WEARCAST_WEBHOOK_SECRET"
TIMEOUT_VAR = "WEARCAST_WEBHOOK_TIMEOUT_S"
SIGNATURE_HEADER = "X-Wearcast-Signature"
DELIVERY_HEADER = "X-Wearcast-Delivery"
PAYLOAD_KIND = "wearcast.new_high_risk"
RETRY_STATUSES = frozenset({429}) | frozenset(range(500, 600))


class WebhookConfig(BaseModel):
    """Where and how to post alerts."""

    model_config = ConfigDict(frozen=True)
    url: str
    secret: SecretStr | None = None
    timeout_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookConfig | None:
        """The webhook from ``WEARCAST_WEBHOOK_*`` variables; None when no URL is set."""
        env = os.environ if environ is None else environ
        url = env.get(URL_VAR, "").strip()
        if not url:
            return None
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(
                f"{URL_VAR}={redact(url)!r} is not an http(s) URL; fix: set it to the receiver's full address, "
                "e.g. https://alerts.example.com/wearcast, or unset it to turn notification off"
            )
        raw_timeout = env.get(TIMEOUT_VAR, "10")
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = math.nan
        if not timeout > 0:
            raise InputError(
                f"{TIMEOUT_VAR}={raw_timeout!r} is not a positive number of seconds; fix: e.g. 10"
            )
        secret = env.get(SECRET_VAR) or None
        return cls(url=url, secret=SecretStr(secret) if secret else None, timeout_s=timeout)


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one payload: delivered or not, after how many attempts, and where it waits if not."""

    delivered: bool
    attempts: int
    delivery_id: str
    status: int | None = None
    error: str | None = None
    outbox_path: Path | None = None


def redact(url: str) -> str:
    """``scheme://host[:port]`` of a URL: its path and query may hold a token."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _json_value(value: Any) -> Any:
    """A JSON-ready scalar: NaN and NaT become None, numpy numbers Python numbers, timestamps ISO text."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def _text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def new_high_risk(risk: pd.DataFrame) -> list[dict[str, Any]]:
    """The flagged machines whose alarm opened on this list (``change == 'new'``), in rank order, JSON-ready."""
    new = risk[risk["flagged"].eq(True) & risk["change"].eq("new")].sort_values("rank")
    machines = []
    for row in new.itertuples(index=False):
        drivers = _text(row.drivers)
        machines.append(
            {
                "rank": _json_value(row.rank),
                "machine_id": str(row.machine_id),
                "site": _text(row.site),
                "machine_type": _text(row.machine_type),
                "as_of": _json_value(row.as_of),
                "failure_probability": _json_value(row.failure_probability),
                "risk_band": _text(row.risk_band),
                "remaining_life_hours": _json_value(row.remaining_life_hours),
                "likely_fault": _text(row.likely_fault),
                "drivers": [d.strip() for d in drivers.split(";") if d.strip()],
                "model": {"name": str(row.model_name), "version": str(row.model_version)},
            }
        )
    return machines


def alert_payload(machines: list[dict[str, Any]], list_path: str | None = None) -> dict[str, Any]:
    """The JSON document posted: its kind, the list's time, where the full list is, and the new machines."""
    times = [m["as_of"] for m in machines if m.get("as_of")]
    return {
        "kind": PAYLOAD_KIND,
        "as_of": max(times) if times else None,
        "count": len(machines),
        "list": list_path,
        "machines": machines,
    }


def encode(payload: Any) -> bytes:
    """The body: canonical JSON (sorted keys), so one payload is always the same bytes and signature."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Wearcast-Signature`` value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def delivery_id(body: bytes) -> str:
    """The ``X-Wearcast-Delivery`` value: the same for every retry and redelivery of one body."""
    return hashlib.sha256(body).hexdigest()[:32]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a body-less GET that 'succeeds'; report the 3xx instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _attempt(
    config: WebhookConfig, body: bytes, delivery: str
) -> tuple[int | None, str | None, float | None]:
    """One POST: (HTTP status or None, error text or None, seconds the server asked us to wait or None)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "wearcast-notify/1",
        DELIVERY_HEADER: delivery,
    }
    if config.secret is not None:
        headers[SIGNATURE_HEADER] = signature(config.secret.get_secret_value(), body)
    request = urllib.request.Request(config.url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=config.timeout_s) as response:
            response.read(65536)
            return response.status, None, None
    except urllib.error.HTTPError as exc:
        excerpt = exc.read(200).decode(errors="replace").strip() if exc.fp else ""
        return (
            exc.code,
            f"HTTP {exc.code} {exc.reason}" + (f": {excerpt}" if excerpt else ""),
            _retry_after(exc),
        )
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, DNS
        reason = getattr(exc, "reason", exc)
        return None, f"{type(exc).__name__}: {reason}", None


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _retryable(status: int | None) -> bool:
    return status is None or status in RETRY_STATUSES


def _deliver(
    config: WebhookConfig, body: bytes, attempts: int, backoff_s: float, max_wait_s: float
) -> DeliveryResult:
    """Post ``body`` up to ``attempts`` times, waiting ``backoff_s``, 2x, 4x, ... between tries."""
    delivery = delivery_id(body)
    status: int | None = None
    error: str | None = None
    attempt = 0
    for attempt in range(1, max(1, attempts) + 1):
        started = time.monotonic()
        status, error, asked_wait = _attempt(config, body, delivery)
        ok = error is None and status is not None and 200 <= status < 300
        retry = not ok and _retryable(status) and attempt < attempts
        fields = {
            "delivery_id": delivery,
            "url": redact(config.url),
            "attempt": attempt,
            "max_attempts": attempts,
            "status": status,
            "outcome": "delivered" if ok else ("retry" if retry else "failed"),
            "elapsed_ms": round(1000 * (time.monotonic() - started)),
            "bytes": len(body),
            "error": error,
        }
        line = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        log.log(logging.INFO if ok else logging.WARNING, "webhook %s", line, extra=fields)
        if ok:
            return DeliveryResult(True, attempt, delivery, status)
        if not retry:
            break
        wait = backoff_s * 2 ** (attempt - 1)
        time.sleep(min(max_wait_s, max(wait, asked_wait or 0.0)))
    return DeliveryResult(False, attempt, delivery, status, error)


def _to_outbox(outbox: Path, body: bytes, delivery: str) -> Path:
    """Write the body whole (temporary name, then rename) as ``<UTC time>_<delivery id>.json``."""
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / f"{pd.Timestamp.now(tz='UTC').strftime('%Y%m%dT%H%M%S')}_{delivery}.json"
    existing = sorted(outbox.glob(f"*_{delivery}.json"))
    if existing:  # the same payload already waits there
        return existing[0]
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(body)
    temporary.replace(path)
    return path


def post_alerts(
    config: WebhookConfig,
    payload: Any,
    outbox: str | Path | None = None,
    attempts: int = 4,
    backoff_s: float = 2.0,
    max_wait_s: float = 60.0,
) -> DeliveryResult:
    """POST ``payload`` as JSON, retrying connection errors, timeouts, 5xx and 429 with exponential backoff
    (``backoff_s``, then twice that, ...; a server's Retry-After is honoured up to ``max_wait_s``). When it is
    not delivered and ``outbox`` is given, the body is kept there for ``redeliver_outbox``. Never raises."""
    body = encode(payload)
    try:
        result = _deliver(config, body, attempts, backoff_s, max_wait_s)
    except Exception as exc:  # a bug or an odd transport error must not cost the list
        log.exception("webhook delivery crashed", extra={"delivery_id": delivery_id(body)})
        result = DeliveryResult(False, 0, delivery_id(body), None, f"{type(exc).__name__}: {exc}")
    if result.delivered or outbox is None:
        return result
    try:
        path = _to_outbox(Path(outbox), body, result.delivery_id)
    except OSError as exc:
        log.error(
            "webhook delivery_id=%s not delivered and the outbox %s is not writable (%s): the list is still in "
            "the outputs folder",
            result.delivery_id,
            outbox,
            exc,
        )
        return result
    log.warning(
        "webhook delivery_id=%s not delivered after %d attempts; kept in %s for redelivery",
        result.delivery_id,
        result.attempts,
        path,
        extra={"delivery_id": result.delivery_id, "outbox_path": str(path)},
    )
    return replace(result, outbox_path=path)


def redeliver_outbox(
    config: WebhookConfig,
    folder: str | Path,
    attempts: int = 4,
    backoff_s: float = 2.0,
    max_wait_s: float = 60.0,
) -> list[DeliveryResult]:
    """Post every payload waiting in ``folder``, oldest first; a delivered file is removed. A payload the
    receiver refuses for good (4xx) moves to ``folder/rejected/`` so it is kept but not retried forever. When the
    receiver cannot be reached at all, the rest wait for the next call. Never raises."""
    results: list[DeliveryResult] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            body = path.read_bytes()
        except OSError as exc:
            log.error("webhook outbox file %s is unreadable: %s", path, exc)
            continue
        try:
            result = replace(_deliver(config, body, attempts, backoff_s, max_wait_s), outbox_path=path)
            results.append(result)
            if result.delivered:
                path.unlink(missing_ok=True)
            elif not _retryable(result.status):
                (path.parent / "rejected").mkdir(exist_ok=True)
                path.replace(path.parent / "rejected" / path.name)
                log.error("webhook outbox file %s refused (%s): moved to rejected/", path.name, result.error)
        except Exception:  # one odd file must not stop the others, nor the flow
            log.exception("webhook redelivery of %s crashed; the file stays in the outbox", path)
            continue
        if not result.delivered and result.status is None:
            break  # unreachable: the other files would fail the same way
    return results


def notify_new_high_risk(
    risk: pd.DataFrame,
    config: WebhookConfig | None,
    outbox: str | Path,
    list_path: str | None = None,
    attempts: int = 4,
    backoff_s: float = 2.0,
    announced: set[str] | frozenset[str] = frozenset(),
) -> DeliveryResult | None:
    """The whole step for the score flow: post the list's new high-risk machines but those ``announced`` already;
    None when there is no webhook or nothing new. Payloads left in ``outbox`` by earlier runs go first."""
    if config is None:
        return None
    if any(Path(outbox).glob("*.json")):
        redeliver_outbox(config, outbox, attempts, backoff_s)
    machines = [m for m in new_high_risk(risk) if m["machine_id"] not in announced]
    if not machines:
        log.info("webhook nothing new on the list: no post")
        return None
    return post_alerts(config, alert_payload(machines, list_path), outbox, attempts, backoff_s)

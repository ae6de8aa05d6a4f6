"""The webhook against a real local HTTP server: signature, retries, the outbox and redelivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from features.errors import InputError
from pipelines.notify import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WebhookConfig,
    alert_payload,
    encode,
    new_high_risk,
    notify_new_high_risk,
    post_alerts,
    redeliver_outbox,
)

SECRET = "s3cret"
FAST = {"backoff_s": 0.01}


class Receiver:
    """A local webhook receiver that answers with scripted statuses (then 200) and records every request."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0, port: int = 0) -> None:
        self.statuses = list(statuses or [])
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body, "path": self.path})
                time.sleep(delay_s)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/abc-token"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def risk_list() -> pd.DataFrame:
    as_of = pd.Timestamp("2024-03-04 06:00", tz="UTC")
    return pd.DataFrame(
        {
            "rank": [1, 2, 3, 4],
            "machine_id": ["P-7", "P-2", "P-9", "P-1"],
            "site": ["A", "B", "A", "A"],
            "machine_type": ["pump", "fan", "pump", "pump"],
            "as_of": [as_of, as_of, as_of, pd.NaT],
            "status": ["scored", "scored", "scored", "no_recent_data"],
            "failure_probability": np.array([0.91, 0.72, 0.55, np.nan]),
            "risk_band": ["high", "high", "medium", ""],
            "flagged": [True, True, False, False],
            "alarm": [True, True, True, False],
            "change": ["new", "rising", "new", ""],
            "days_flagged": [0.0, 3.0, 0.0, 0.0],
            "alarm_since": [as_of, as_of - pd.Timedelta(days=3), as_of, pd.NaT],
            "remaining_life_hours": [40.0, np.nan, 300.0, np.nan],
            "likely_fault": ["outer race", "imbalance", "", ""],
            "drivers": ["outer-race energy 4.1x baseline; bearing temperature +12 °C", "x", "", "no reading"],
            "model_name": "wearcast-risk",
            "model_version": "3",
        }
    )


def config(url: str, timeout_s: float = 5.0) -> WebhookConfig:
    return WebhookConfig.from_env(
        {
            "WEARCAST_WEBHOOK_URL": url,
            "WEARCAST_WEBHOOK_SECRET": SECRET,
            "WEARCAST_WEBHOOK_TIMEOUT_S": str(timeout_s),
        }
    )


def test_config_comes_from_the_environment_and_hides_the_secret():
    assert WebhookConfig.from_env({}) is None
    assert WebhookConfig.from_env({"WEARCAST_WEBHOOK_SECRET": "x"}) is None
    cfg = config("https://alerts.example.com/hook")
    assert cfg.url == "https://alerts.example.com/hook" and cfg.timeout_s == 5.0
    assert SECRET not in repr(cfg)
    with pytest.raises(InputError, match=r"WEARCAST_WEBHOOK_URL='ftp://host'.*fix"):
        WebhookConfig.from_env({"WEARCAST_WEBHOOK_URL": "ftp://host/x"})
    with pytest.raises(InputError, match="WEARCAST_WEBHOOK_TIMEOUT_S='soon'"):
        WebhookConfig.from_env({"WEARCAST_WEBHOOK_URL": "http://h/", "WEARCAST_WEBHOOK_TIMEOUT_S": "soon"})


def test_new_high_risk_keeps_flagged_new_machines_json_ready():
    machines = new_high_risk(risk_list())
    assert [m["machine_id"] for m in machines] == ["P-7"]  # P-2 is not new, P-9 is new but not flagged
    assert machines[0] == {
        "rank": 1,
        "machine_id": "P-7",
        "site": "A",
        "machine_type": "pump",
        "as_of": "2024-03-04T06:00:00+00:00",
        "failure_probability": 0.91,
        "risk_band": "high",
        "remaining_life_hours": 40.0,
        "likely_fault": "outer race",
        "drivers": ["outer-race energy 4.1x baseline", "bearing temperature +12 °C"],
        "model": {"name": "wearcast-risk", "version": "3"},
    }
    json.dumps(machines, allow_nan=False)  # strict JSON: no NaN, no numpy types


def test_delivered_with_a_correct_signature_and_the_expected_json(tmp_path, caplog):
    payload = alert_payload(new_high_risk(risk_list()), list_path="outputs/risk_list.csv")
    caplog.set_level(logging.INFO, logger="wearcast.notify")
    with Receiver() as server:
        result = post_alerts(config(server.url), payload, outbox=tmp_path / "outbox", **FAST)
    assert result.delivered and result.attempts == 1 and result.status == 200 and result.outbox_path is None
    (request,) = server.requests
    body = request["body"]
    assert json.loads(body) == payload
    assert payload["kind"] == "wearcast.new_high_risk" and payload["count"] == 1
    assert payload["as_of"] == "2024-03-04T06:00:00+00:00"
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"][SIGNATURE_HEADER], expected)
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"][DELIVERY_HEADER] == result.delivery_id
    assert not (tmp_path / "outbox").exists()
    record = caplog.records[-1]
    assert record.name == "wearcast.notify" and record.outcome == "delivered" and record.attempt == 1
    assert "abc-token" not in caplog.text  # the URL's path may be a credential: never logged


def test_two_503_then_success_is_delivered_on_attempt_3(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="wearcast.notify")
    with Receiver(statuses=[503, 503]) as server:
        result = post_alerts(config(server.url), {"machines": []}, outbox=tmp_path / "outbox", **FAST)
    assert result.delivered and result.attempts == 3
    assert len(server.requests) == 3
    assert len({r["headers"][DELIVERY_HEADER] for r in server.requests}) == 1  # one id for all retries
    attempts = [r for r in caplog.records if r.name == "wearcast.notify"]
    assert [r.outcome for r in attempts] == ["retry", "retry", "delivered"]
    assert [r.status for r in attempts] == [503, 503, 200]


def test_429_is_retried_but_400_is_not(tmp_path):
    with Receiver(statuses=[429]) as server:
        assert post_alerts(config(server.url), {"a": 1}, **FAST).attempts == 2
    with Receiver(statuses=[400, 400]) as server:
        result = post_alerts(config(server.url), {"a": 1}, outbox=tmp_path / "outbox", **FAST)
    assert not result.delivered and result.attempts == 1 and result.status == 400
    assert len(server.requests) == 1
    assert "HTTP 400" in result.error
    assert result.outbox_path is not None and result.outbox_path.is_file()  # refused, but kept


def test_all_5xx_exhausts_the_attempts_with_backoff(tmp_path):
    with Receiver(statuses=[500] * 10) as server:
        started = time.monotonic()
        result = post_alerts(config(server.url), {"a": 1}, attempts=3, backoff_s=0.05)
        waited = time.monotonic() - started
    assert not result.delivered and result.attempts == 3 and result.status == 500
    assert len(server.requests) == 3
    assert waited >= 0.05 + 0.10  # 0.05 then 0.10: exponential


def test_a_slow_server_times_out_and_is_retried(tmp_path):
    with Receiver(delay_s=0.5) as server:
        result = post_alerts(config(server.url, timeout_s=0.1), {"a": 1}, attempts=2, **FAST)
    assert not result.delivered and result.attempts == 2 and result.status is None
    assert "timed out" in result.error


def test_server_down_writes_the_outbox_then_redelivers_once_up(tmp_path):
    port = free_port()
    cfg = config(f"http://127.0.0.1:{port}/hook")
    outbox = tmp_path / "outbox"
    payload = alert_payload(new_high_risk(risk_list()))
    result = post_alerts(cfg, payload, outbox=outbox, attempts=3, **FAST)
    assert not result.delivered and result.attempts == 3 and result.status is None
    assert "refused" in result.error.lower()
    assert result.outbox_path is not None and result.outbox_path.parent == outbox
    assert json.loads(result.outbox_path.read_bytes()) == payload
    assert [p.name for p in outbox.iterdir()] == [result.outbox_path.name]  # no partial file left
    # the same payload failing again is not kept twice
    assert post_alerts(cfg, payload, outbox=outbox, attempts=1).outbox_path == result.outbox_path

    assert redeliver_outbox(cfg, outbox, attempts=1, **FAST)[0].delivered is False  # still down: kept
    assert result.outbox_path.is_file()

    with Receiver(port=port) as server:
        redelivered = redeliver_outbox(cfg, outbox, **FAST)
    assert [r.delivered for r in redelivered] == [True]
    assert redelivered[0].delivery_id == result.delivery_id
    (request,) = server.requests
    assert request["body"] == encode(payload)
    expected = "sha256=" + hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
    assert request["headers"][SIGNATURE_HEADER] == expected
    assert list(outbox.glob("*.json")) == []


def test_redelivery_sets_aside_what_the_receiver_refuses(tmp_path):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "20240101T000000_a.json").write_bytes(encode({"n": 1}))
    (outbox / "20240102T000000_b.json").write_bytes(encode({"n": 2}))
    with Receiver(statuses=[422]) as server:
        results = redeliver_outbox(config(server.url), outbox, **FAST)
    assert [(r.delivered, r.status) for r in results] == [(False, 422), (True, 200)]
    assert [json.loads(r["body"]) for r in server.requests] == [{"n": 1}, {"n": 2}]
    assert [p.name for p in (outbox / "rejected").iterdir()] == ["20240101T000000_a.json"]
    assert list(outbox.glob("*.json")) == []


def test_notify_new_high_risk_posts_only_when_there_is_something_new(tmp_path):
    assert notify_new_high_risk(risk_list(), None, tmp_path / "outbox") is None
    quiet = risk_list().assign(change="")
    with Receiver() as server:
        cfg = config(server.url)
        assert notify_new_high_risk(quiet, cfg, tmp_path / "outbox", **FAST) is None
        result = notify_new_high_risk(risk_list(), cfg, tmp_path / "outbox", list_path="x.csv", **FAST)
    assert result is not None and result.delivered
    (request,) = server.requests
    assert [m["machine_id"] for m in json.loads(request["body"])["machines"]] == ["P-7"]


def test_unsigned_without_a_secret(tmp_path):
    with Receiver() as server:
        cfg = WebhookConfig.from_env({"WEARCAST_WEBHOOK_URL": server.url})
        assert post_alerts(cfg, {"a": 1}, **FAST).delivered
    assert SIGNATURE_HEADER not in server.requests[0]["headers"]


def test_the_score_flow_posts_each_new_machine_once_per_list_time_and_loses_none(tmp_path, monkeypatch):
    """A run on the same readings again keeps ``new`` on the list but must not post it twice; a run that wrote
    its list but never got to post (killed, or no webhook yet) must not make the next run skip the machine."""
    from pipelines import flows
    from pipelines.notify import DeliveryResult

    seen: list[set[str]] = []

    def fake(risk, config, outbox, list_path=None, announced=frozenset()):
        seen.append(set(announced))
        return None if config is None else DeliveryResult(True, 1, "d1")

    monkeypatch.setattr(flows, "notify_new_high_risk", fake)
    risk = pd.DataFrame(
        {
            "machine_id": ["a", "b"],
            "as_of": pd.to_datetime(["2026-02-01 10:00"] * 2, utc=True),
            "flagged": [True, False],
            "change": ["new", ""],
        }
    )
    config = object()
    flows.notify.fn(risk, None, tmp_path, "list.csv")  # no webhook yet: nothing was posted
    flows.notify.fn(risk, config, tmp_path, "list.csv")  # the webhook is set: post a
    flows.notify.fn(risk, config, tmp_path, "list.csv")  # the same readings again: a was posted
    later = risk.assign(as_of=risk["as_of"] + pd.Timedelta(hours=1))
    flows.notify.fn(later, config, tmp_path, "list.csv")  # a list of a later time starts afresh
    assert seen == [set(), set(), {"a"}, set()]

"""The notification robots (streams/alerts/notify.py): signatures against known answers, and real
HTTP receivers on loopback that check each robot's request the way the vendor would.

The known answers were computed with OpenSSL, independently of Python's hmac:
  printf '%s\\n%s' 1700000000000 SECtestsecret123 | openssl dgst -sha256 -hmac SECtestsecret123 -binary | base64
  printf '' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$(printf '%s\\n%s' 1700000000 feishusecret | xxd -p) \\
      -binary | base64
(The vendors' pages describe the algorithms but print no test vectors.)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from streams.alerts.notify import Message, Robot, dingtalk_sign, feishu_sign, robots_from_env, send

PROMO = str(Path(sys.executable).with_name("promo"))


def test_dingtalk_signature_known_answer() -> None:
    assert dingtalk_sign("SECtestsecret123", 1_700_000_000_000) == "Y4At+TruAh3C4rXZwD748s2rqrapbJWKRagqLANB690="


def test_feishu_signature_known_answer() -> None:
    assert feishu_sign("feishusecret", 1_700_000_000) == "5Wc8F8b2vZlNjoVFpK6BAaovMobglP4Rm1FzmEq/rCU="


class Receiver:
    """A loopback HTTP server that records each request and answers like a robot."""

    def __init__(self, answers: list[tuple[int, dict[str, Any]]]) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.answers = answers
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests.append((self.path, body))
                status, doc = outer.answers.pop(0) if outer.answers else (200, {"errcode": 0})
                payload = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver([]) as r:
        yield r


MESSAGE = Message("订单骤降 / Orders drop", "双11主会场 wechat: 订单 12/min, 预期 240/min", {"metric": "orders"})


def test_dingtalk_request_verifies_as_dingtalk_would(receiver: Receiver) -> None:
    robot = Robot("dingtalk", f"{receiver.url}/robot/send?access_token=tok", "SECabc")
    outcome = send(robot, MESSAGE, clock=lambda: 1_700_000_000.123)
    assert outcome.ok and outcome.attempts == 1
    ((path, body),) = receiver.requests
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    ts = query["timestamp"][0]
    expected = base64.b64encode(hmac.new(b"SECabc", f"{ts}\nSECabc".encode(), hashlib.sha256).digest()).decode()
    assert query["access_token"] == ["tok"] and ts == "1700000000123" and query["sign"] == [expected]
    doc = json.loads(body)
    assert doc["msgtype"] == "markdown" and "双11主会场" in doc["markdown"]["text"]


def test_feishu_request_verifies_as_feishu_would(receiver: Receiver) -> None:
    robot = Robot("feishu", f"{receiver.url}/open-apis/bot/v2/hook/abc", "fsecret")
    assert send(robot, MESSAGE, clock=lambda: 1_700_000_000.9).ok
    doc = json.loads(receiver.requests[0][1])
    key = f"{doc['timestamp']}\nfsecret".encode()
    assert (
        doc["timestamp"] == "1700000000"
        and doc["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    )
    assert doc["msg_type"] == "text" and doc["content"]["text"].startswith("订单骤降")


def test_wecom_and_webhook_carry_no_signature(receiver: Receiver) -> None:
    assert send(Robot("wecom", f"{receiver.url}/cgi-bin/webhook/send?key=k"), MESSAGE).ok
    assert send(Robot("webhook", f"{receiver.url}/hook"), MESSAGE).ok
    wecom, webhook = (json.loads(body) for _, body in receiver.requests)
    assert wecom["msgtype"] == "markdown" and "sign" not in wecom
    assert webhook == {"title": MESSAGE.title, "text": MESSAGE.text, "metric": "orders"}


def test_a_robot_error_in_a_200_answer_is_retried_then_reported() -> None:
    with Receiver([(200, {"errcode": 310000, "errmsg": "sign not match"}), (503, {}), (200, {"errcode": 0})]) as r:
        waits: list[float] = []
        outcome = send(Robot("dingtalk", f"{r.url}/robot/send?access_token=t", "s"), MESSAGE, sleep=waits.append)
        assert outcome.ok and outcome.attempts == 3 and len(waits) == 2
        assert all(0 <= w <= 0.5 * 2**i for i, w in enumerate(waits))  # backoff with full jitter
    with Receiver([(200, {"errcode": 310000, "errmsg": "sign not match"})] * 4) as r:
        outcome = send(Robot("dingtalk", f"{r.url}/robot/send?access_token=t", "s"), MESSAGE, sleep=lambda _: None)
        assert not outcome.ok and outcome.attempts == 4 and "310000" in outcome.detail


def test_the_rate_limit_holds_back_the_21st_message_of_a_minute(receiver: Receiver) -> None:
    robot = Robot("wecom", f"{receiver.url}/cgi-bin/webhook/send?key=k")
    now = [1000.0]
    outcomes = [send(robot, MESSAGE, clock=lambda: now[0]) for _ in range(21)]
    assert [o.ok for o in outcomes] == [True] * 20 + [False] and "held back" in outcomes[-1].detail
    now[0] += 60
    assert send(robot, MESSAGE, clock=lambda: now[0]).ok
    assert len(receiver.requests) == 21


def test_credentials_never_show_in_names_or_outcomes() -> None:
    robot = Robot("dingtalk", "http://127.0.0.1:1/robot/send?access_token=SUPERSECRETTOKEN", "SECxyz")
    outcome = send(robot, MESSAGE, attempts=1)
    assert not outcome.ok
    assert "SUPERSECRETTOKEN" not in f"{outcome} {robot.name}" and "SECxyz" not in f"{outcome} {robot.name}"


def test_robots_come_from_the_environment_and_test_notify_says_how_each_went(receiver: Receiver) -> None:
    env = {
        "PROMO_NOTIFY_WECOM_URL": f"{receiver.url}/cgi-bin/webhook/send?key=TOPSECRETKEY",
        "PROMO_NOTIFY_FEISHU_URL": f"{receiver.url}/open-apis/bot/v2/hook/x",
        "PROMO_NOTIFY_FEISHU_SECRET": "fs",
    }
    assert [r.kind for r in robots_from_env(env)] == ["wecom", "feishu"]
    result = subprocess.run([PROMO, "alerts", "test-notify"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", **env}, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "wecom (127.0.0.1): ok after 1 attempt(s) (HTTP 200)",
        "feishu (127.0.0.1): ok after 1 attempt(s) (HTTP 200)",
    ]
    assert "TOPSECRETKEY" not in result.stdout + result.stderr
    assert json.loads(receiver.requests[0][1])["markdown"]["content"].startswith("**promo 告警测试**")
    with pytest.raises(ValueError, match="http"):
        robots_from_env({"PROMO_NOTIFY_WEBHOOK_URL": "file:///etc/passwd"})

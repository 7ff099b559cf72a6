"""Notifications where Chinese war rooms look: DingTalk, WeCom and Feishu group robots, and a plain
JSON webhook. (Issue 17, item 6; the detector that raises alerts is not built yet.)

- DingTalk custom robot: `https://oapi.dingtalk.com/robot/send?access_token=…`; with its optional
  signing ("加签"), `timestamp` (ms) and `sign` go in the query: sign = urlencode(base64(
  HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))).
- WeCom (企业微信) group robot: `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…`; the key
  in the URL is the credential, there is no signing.
- Feishu / Lark custom bot: `https://open.feishu.cn/open-apis/bot/v2/hook/…`; with signing,
  `timestamp` (s) and `sign` go in the body: sign = base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}",
  msg=b"")) — the secret-bearing string is the key and the message is empty.
- webhook: the alert as one JSON object, POSTed as is.

Robots come from the environment only (`PROMO_NOTIFY_<KIND>_URL`, `PROMO_NOTIFY_<KIND>_SECRET`),
never from a committed file; their URLs hold credentials too, so neither is ever printed or logged
(`Robot.name` shows the kind and host only). A URL is checked when it is read (`url_problem`): a
malformed one is a configuration error that says what is wrong without quoting it. A URL's
`user:password@` is sent as basic auth, not as part of the host. What a robot answers is redacted
(`redact`: the URL's token, key and path, the signature, the secret) and cut short before anyone
sees it. Each robot keeps under its documented rate (DingTalk and WeCom: 20 messages a minute) and
retries a failed send with backoff and jitter.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import math
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.alerts.plan import iso

KINDS = ("dingtalk", "wecom", "feishu", "webhook")
# Under each robot's documented limit (DingTalk and WeCom 20 a minute, Feishu 100 a minute and 5 a second),
# counting every attempt, retries too: the robot counts what arrives, and a request that took a few
# hundred milliseconds more to arrive than the one a minute before it must not be its 21st (DingTalk then
# refuses the robot's messages for 10 minutes). An outside probe saw Feishu get 14 in one second.
PER_MINUTE = {"dingtalk": 18, "wecom": 18, "feishu": 90, "webhook": 600}
PER_SECOND = {"feishu": 4}
# Answers that say "too fast" (DingTalk 130101: 20 a minute exceeded, the robot muted for 10 minutes; WeCom
# 45009; Feishu 11232 and 99991400; HTTP 429 from any): no more requests to that robot until it cools down.
RATE_CODES = {"dingtalk": {130101}, "wecom": {45009}, "feishu": {11232, 99991400}, "webhook": set()}
COOL_S = {"dingtalk": 600.0, "wecom": 60.0, "feishu": 60.0, "webhook": 60.0}
# A robot that answers with its own error code has read the request and refused it (a signature, keyword or
# IP allowlist that does not match, a key that does not exist): the same request again refuses again, so it
# is not retried; only "busy" (-1, the vendors' "system busy") is. The runner still tries it once a minute:
# someone may fix the robot's settings on the vendor's side meanwhile.
BUSY_CODES = {-1}
DETAIL_MAX = 200  # characters of a robot's answer or an error that are shown
# Query parameters whose values are credentials or signatures, wherever they show up in a robot's answer.
SECRET_PARAM = re.compile(r"(?i)\b(access_token|token|key|sign|signature|timestamp|secret|password)=[^&\s\"'<>]*")


def url_problem(url: str) -> str | None:
    """What is wrong with a robot URL, in words that quote none of it (it holds credentials); None
    when urllib can send to it."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return "has a space or a control character in it (encode a space as %20)"
    if not url.isascii():
        return "has a character that is not ASCII in it (percent-encode it)"
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "has a malformed host"
    if parts.scheme not in ("http", "https"):
        return "must be an http(s) URL"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "has a port that is not a number from 1 to 65535"
    if not parts.hostname:
        return "has no host"
    return None


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` (a robot's answer, an error) fit to print: every secret string and every credential
    parameter's value replaced by ***, on one line, at most DETAIL_MAX characters."""
    for secret in sorted({s for s in secrets if len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def _with(detail: str, said: str) -> str:
    """A redacted detail and what became of the request, within DETAIL_MAX (the answer is what is cut)."""
    room = DETAIL_MAX - len(said) - 2
    return f"{detail if len(detail) <= room else detail[: room - 1] + '…'}; {said}"


def url_secrets(url: str) -> list[str]:
    """The parts of a robot URL that are credentials: user and password, the path (a Feishu hook's
    id is its token) and its longer segments, every query value (raw and decoded)."""
    try:
        parts = urllib.parse.urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return [url]
    out = [v for v in (user, password) if v]
    out += [urllib.parse.unquote(v) for v in out]
    if len(parts.path) > 1:
        out += [parts.path, *(seg for seg in parts.path.split("/") if len(seg) >= 12)]
    for pair in parts.query.split("&"):
        name, equals, value = pair.partition("=")
        value = value if equals else name  # `?TOKEN`: the bare value is the credential
        out += [value, urllib.parse.unquote_plus(value)]
    if parts.fragment:
        out += [parts.fragment, urllib.parse.unquote(parts.fragment)]
    return out


class _Refuse(urllib.request.HTTPRedirectHandler):
    """A robot's answer is its answer: a 3xx is a failed send, not a GET of somewhere else with the
    Authorization header (a webhook's basic auth) and without the message."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Deadline:
    """The whole exchange, answer included, within the connection's timeout, not each read: a webhook
    that answered a byte every 2 s of a 100 kB body held `promo alerts test-notify` (and would hold
    that robot's sends) for hours, each read well inside its 5 s. When the time is up the socket is
    shut, and the read under way fails as a timed-out attempt."""

    sock: Any
    timeout: Any

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        expired = _EXCHANGE.expired = threading.Event()  # `send` reads it in this thread
        # urllib drops the connection's reference to its socket once the answer's headers are in, so
        # the timer holds it; `send` cancels the timer when the answer is in. (Not covered: an HTTPS
        # proxy's answer to CONNECT, read before this.)
        watchdog = _EXCHANGE.watchdog = threading.Timer(self.timeout, _shut, (self.sock, expired))
        watchdog.daemon = True
        watchdog.start()


_EXCHANGE = threading.local()  # the deadline of the exchange under way in this thread


def _expired() -> bool:
    expired = getattr(_EXCHANGE, "expired", None)
    return expired is not None and expired.is_set()


def _shut(sock: socket.socket, expired: threading.Event) -> None:
    expired.set()  # whatever was read so far (a status line, half the headers) is no answer
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _DeadlineHTTP(_Deadline, http.client.HTTPConnection):
    pass


class _DeadlineHTTPS(_Deadline, http.client.HTTPSConnection):
    pass


class _HTTP(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_DeadlineHTTP, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_DeadlineHTTPS, req, context=self._context)  # type: ignore[attr-defined]


_NO_REDIRECTS = urllib.request.build_opener(_Refuse, _HTTP, _HTTPS)
ANSWER_MAX = 65536  # a robot answers a line of JSON: what comes after this is not read


def basic_auth(url: str) -> tuple[str, str | None]:
    """`url` without its `user:password@`, and the Authorization header that carries them instead."""
    try:
        parts = urllib.parse.urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return url, None
    if user is None:
        return url, None
    plain = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password or '')}"
    return plain, "Basic " + base64.b64encode(pair.encode()).decode()


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature, base64 (URL-encode it for the query)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's signature: the HMAC key is f"{timestamp}\\n{secret}" and the message is empty."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True)
class Message:
    """One notification: a title line and a body, in the war room's language."""

    title: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=dict)  # the alert's data, for the JSON webhook


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: Mapping[str, str]
    secrets: tuple[str, ...] = ()  # what this request adds to the robot's secrets (its signature)


@dataclass
class Robot:
    kind: str
    url: str = field(repr=False)  # credentials: never in a repr
    secret: str = field(default="", repr=False)
    sent: deque[float] = field(default_factory=deque)  # send times of the last minute (rate limit)
    cool_until: float = 0.0  # the robot said "too fast": nothing is sent to it before this

    @property
    def name(self) -> str:
        """What may be printed: the kind and the host, never the token, key or path."""
        try:
            host = urllib.parse.urlsplit(self.url).hostname
        except ValueError:
            host = None
        return f"{self.kind} ({host or '?'})"

    def secrets(self) -> list[str]:
        """Every string of this robot that must never be shown: its secret and its URL's credentials."""
        return [self.secret, *url_secrets(self.url)]

    def redact(self, text: str, *more: str) -> str:
        return redact(text, [*self.secrets(), *more])

    def request(self, message: Message, now: float) -> Request:
        """The HTTP request for `message` at wall time `now` (pure: the signature depends on it)."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        text = f"{message.title}\n{message.text}"
        url, auth = basic_auth(self.url)
        signed: tuple[str, ...] = ()
        if auth is not None:
            headers["Authorization"] = auth
            signed = (auth, auth.removeprefix("Basic "))
        doc: dict[str, Any]
        if self.kind == "dingtalk":
            doc = {
                "msgtype": "markdown",
                "markdown": {"title": message.title, "text": f"### {message.title}\n\n{message.text}"},
            }
            if self.secret:
                ts = int(now * 1000)
                sign = dingtalk_sign(self.secret, ts)
                query = urllib.parse.urlencode({"timestamp": ts, "sign": sign})
                url = f"{url}{'&' if '?' in url else '?'}{query}"
                signed += (str(ts), sign, *url_secrets(url))
        elif self.kind == "wecom":
            doc = {"msgtype": "markdown", "markdown": {"content": f"**{message.title}**\n{message.text}"}}
        elif self.kind == "feishu":
            doc = {"msg_type": "text", "content": {"text": text}}
            if self.secret:
                ts = int(now)
                sign = feishu_sign(self.secret, ts)
                doc = {"timestamp": str(ts), "sign": sign, **doc}
                signed += (str(ts), sign)
        else:
            doc = {"title": message.title, "text": message.text, **webhook_fields(message.fields)}
        return Request(url, json.dumps(doc, ensure_ascii=False).encode(), headers, signed)

    def admit(self, now: float) -> bool:
        """Whether one more request fits under the robot's rate this minute (and count it)."""
        if now < self.cool_until:
            return False
        while self.sent and now - self.sent[0] >= 60:
            self.sent.popleft()
        if len(self.sent) >= PER_MINUTE[self.kind]:
            return False
        per_second = PER_SECOND.get(self.kind)
        if per_second is not None and sum(1 for t in self.sent if now - t < 1.0) >= per_second:
            return False
        self.sent.append(now)
        return True


@dataclass(frozen=True)
class Outcome:
    robot: str
    ok: bool
    attempts: int
    detail: str  # the robot's answer or the error, credentials never included
    held: bool = False  # not sent, or not taken, for the rate's sake (ours, or the robot's "too fast"): no failure


# The alert's times in the JSON webhook's fields: ISO 8601 UTC, as `promo alerts list --json` gives them (they
# were epoch seconds there: an outside probe read two formats for one incident).
WEBHOOK_TIMES = frozenset({"started_at", "detected_at", "opened_at", "resolved_at", "reopened_from", "acked_at"})


def webhook_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` with their times (and a digest's) as ISO 8601 UTC; a time that is not one (None, NaN) is null."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in WEBHOOK_TIMES:
            finite = isinstance(value, int | float) and math.isfinite(value)
            out[key] = iso(float(value)) if finite else None
        elif key == "digest" and isinstance(value, list):
            out[key] = [webhook_fields(d) if isinstance(d, Mapping) else d for d in value]
        else:
            out[key] = value
    return out


def robots_from_env(environ: Mapping[str, str] | None = None) -> list[Robot]:
    """The configured robots; a ValueError naming each malformed URL's variable and what is wrong
    with it, on one line and never quoting the URL."""
    env = os.environ if environ is None else environ
    out, problems = [], []
    for kind in KINDS:
        var, secret_var = f"PROMO_NOTIFY_{kind.upper()}_URL", f"PROMO_NOTIFY_{kind.upper()}_SECRET"
        # Set but empty is an error, as for every PROMO_* variable: an empty secret sent unsigned
        # requests a signed robot refuses, found out on the sale day (an outside probe)
        problems += [f"{v} is set but empty: give it a value, or unset it" for v in (var, secret_var)
                     if v in env and not env[v].strip()]  # fmt: skip
        url = env.get(var, "").strip()
        if not url and env.get(secret_var, "").strip():
            problems.append(f"{secret_var} is set but {var} is not: the secret signs that robot's messages")
        if url:
            problem = url_problem(url)
            if problem is not None:
                problems.append(f"{var} (the {kind} robot) {problem}")
            out.append(Robot(kind, url, env.get(f"PROMO_NOTIFY_{kind.upper()}_SECRET", "")))
    if problems:
        raise ValueError("; ".join(problems) + " (the value is not shown: it holds credentials)")
    return out


OK, RETRY, REFUSED, TOO_FAST = "ok", "retry", "refused", "too fast"  # what an answer says of the request


def verdict(kind: str, status: int, code: Any = 0) -> str:
    """What an answer of HTTP `status` with the robot's own error `code` says: delivered, worth trying again
    (the robot is busy or away), refused as it stands (trying again gives the same answer), or too fast."""
    if status == 429 or (isinstance(code, int) and code in RATE_CODES.get(kind, ())):
        return TOO_FAST
    if status >= 500 or status in (408, 425):
        return RETRY
    if not 200 <= status < 300:
        return REFUSED  # 4xx: a URL, key or token the robot does not have, a body it does not take
    if code in (0, None):
        return OK
    return RETRY if code in BUSY_CODES else REFUSED


def _answer_ok(kind: str, status: int, body: bytes) -> tuple[str, str]:
    """Robots answer 200 with their own error codes in the body (errcode / code != 0 is a failure)."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = {}
    code = doc.get("errcode", doc.get("code", doc.get("StatusCode", 0))) if isinstance(doc, dict) else 0
    message = str(doc.get("errmsg", doc.get("msg", ""))) if isinstance(doc, dict) else ""
    said = verdict(kind, status, code)
    return said, f"HTTP {status}" + (f", code {code} {message}".rstrip() if code not in (0, None) else "")


def send(
    robot: Robot,
    message: Message,
    *,
    attempts: int = 4,
    timeout_s: float = 5.0,
    backoff_s: float = 0.5,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Send with retries (exponential backoff with full jitter) while the failure is one that may pass;
    never raises, never prints secrets. Every attempt counts against the robot's rate."""
    if not robot.admit(clock()):
        why = "cooling down after it said too fast" if clock() < robot.cool_until else (
            f"over {PER_MINUTE[robot.kind]} messages a minute")  # fmt: skip
        return Outcome(robot.name, False, 0, f"{why}: held back", held=True)
    detail = ""
    for attempt in range(1, attempts + 1):
        if attempt > 1 and not robot.admit(clock()):  # a retry is a request too: the robot counts it
            return Outcome(robot.name, False, attempt - 1, _with(detail, "not retried: the rate is used up"))
        req = robot.request(message, clock())
        _EXCHANGE.expired = _EXCHANGE.watchdog = None
        timed_out = f"TimeoutError: no whole answer within {timeout_s:g} s"
        try:
            http = urllib.request.Request(req.url, data=req.body, headers=dict(req.headers), method="POST")  # noqa: S310
            with _NO_REDIRECTS.open(http, timeout=timeout_s) as resp:
                body = resp.read(ANSWER_MAX)
            # Shut by the deadline: what was read (a status line, half the headers) is no answer.
            said, detail = (RETRY, timed_out) if _expired() else _answer_ok(robot.kind, resp.status, body)
        except urllib.error.HTTPError as exc:  # a redirect too: it would re-send as a GET, credentials and all
            if 300 <= exc.code < 400:
                said, detail = REFUSED, f"HTTP {exc.code} (a redirect, not followed)"
            else:
                try:  # the error's body says which refusal (a robot's code); cut off, it is a failed attempt
                    body = exc.read(ANSWER_MAX) if exc.fp is not None else b""
                    said, detail = _answer_ok(robot.kind, exc.code, body)
                except Exception as cut:  # reset mid-body: send never raises
                    said, detail = RETRY, f"HTTP {exc.code}, its answer cut off ({type(cut).__name__})"
        except Exception as exc:  # refused, timed out, or a URL http.client rejects: a failed attempt
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            # A webhook silent until the deadline shut it reads "remote end closed": it is a timeout;
            # so is the socket's own timeout, which on a loaded host can fire before the deadline's timer
            # (CI read "TimeoutError: timed out" for a webhook that never answered)
            late = _expired() or isinstance(reason, TimeoutError)
            said, detail = RETRY, timed_out if late else f"{type(reason).__name__}: {reason}"
        finally:
            if _EXCHANGE.watchdog is not None:
                _EXCHANGE.watchdog.cancel()
        detail = robot.redact(detail, *req.secrets)
        if said == OK:
            return Outcome(robot.name, True, attempt, detail)
        if said == TOO_FAST:
            robot.cool_until = clock() + COOL_S[robot.kind]
            said_too_fast = _with(detail, f"too fast: nothing to it for {COOL_S[robot.kind]:g} s")
            return Outcome(robot.name, False, attempt, said_too_fast, held=True)
        if said == REFUSED:
            return Outcome(robot.name, False, attempt, _with(detail, "refused as sent, not retried"))
        if attempt < attempts:
            sleep(random.uniform(0, backoff_s * 2 ** (attempt - 1)))
    return Outcome(robot.name, False, attempts, detail)

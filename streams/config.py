"""One frozen settings object, read from `PROMO_*` environment variables or given by the CLI.

Secrets (a ClickHouse password inside the DSN) are kept in a `Secret` so they never show up in
logs or reprs; they come from the environment, never from committed files.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from streams.contract.limits import Limits, StageConfig
from streams.contract.topics import INPUTS, Topic
from streams.errors import ConfigError

ENV_PREFIX = "PROMO_"


def _broker_problem(hostport: str) -> bool:
    """Is `host[:port]` (an IPv6 host in brackets) no broker address?"""
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        if not rest:
            return not host
        if not rest.startswith(":"):
            return True
        port = rest[1:]
    elif hostport.count(":") > 1 or "," in hostport:
        return True  # IPv6 without brackets, or a list inside one URL
    else:
        host, _, port = hostport.partition(":")
        if ":" not in hostport:
            return not host
    return not host or not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535)


@dataclass(frozen=True)
class Secret:
    """A string that does not print itself."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "********" if self.value else ""

    def __repr__(self) -> str:
        return f"Secret({self!s})"


def _userinfo(dsn: str) -> tuple[str, str, str] | None:
    """(scheme://, user, password) of a DSN with credentials, read from the raw string: everything
    between `://` and the last `@` is the user and password. urlsplit cuts a password holding an
    unescaped `#`, `/` or `?` at that character and reads the rest as the host (a review: the
    password then showed in full)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return None
    user, colon, password = rest.rpartition("@")[0].partition(":")
    return f"{scheme}://", user, password if colon else ""


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced, for logs and messages."""
    found = _userinfo(dsn)
    if found is None or not found[2]:
        return dsn
    scheme, user, _ = found
    return f"{scheme}{user}:********@{dsn.partition('://')[2].rpartition('@')[2]}"


def scrub(text: str, *secrets: str) -> str:
    """`text` with every secret in it hidden, as sent (a password, a token) and as an HTTP client
    puts it on the wire (URL-quoted; `user:password` in Basic auth's base64). A server that echoes
    its request in an error (an Authorization header, say) must not put a credential in our
    messages, logs or /health (an outside probe found a Grafana token and a ClickHouse password that way)."""
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        if len(secret) < 3:  # "a" in every word: too short to hide without hiding the message
            continue
        for form in {secret, quote(secret, safe=""), base64.b64encode(secret.encode()).decode()}:
            text = text.replace(form, "********")
    return text


def dsn_secrets(dsn: str) -> tuple[str, ...]:
    """What in a ClickHouse DSN is a credential, in the forms `scrub` hides: its password and its
    `user:password` (Basic auth)."""
    found = _userinfo(dsn)
    if found is None or not found[2]:
        return ()
    user, password = found[1], found[2]
    return (password, unquote(password), f"{unquote(user)}:{unquote(password)}")


def _dsn_problem(dsn: str) -> str | None:
    """Why an http(s) ClickHouse DSN is no server address, or None."""
    if any(c.isspace() for c in dsn):
        return "it has a space in it (quote a password's characters: %20)"
    found = _userinfo(dsn)
    if found is not None and any(c in found[1] + found[2] for c in "#/?"):
        return "its user or password has an unescaped '#', '/' or '?' (write %23, %2F, %3F)"
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:  # never its text: it quotes what it took for the port, a password's start maybe
        return "its port is no number from 1 to 65535 (or a [ in the host is not closed)"
    if not parts.hostname:
        return "it names no host"
    if port is not None and port == 0:
        return "port 0"
    return None


# Kafka's topic names: these characters, at most 249 of them (the longest of ours is the prefix + "heartbeats").
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_TOPIC_MAX = 249
# Every duration setting is at most a year: beyond it no window means anything, and a huge float
# (1e308) turned into milliseconds was a traceback after the worker had started.
MAX_SECONDS = 365 * 86400.0

INPUT_TOPICS = INPUTS


@dataclass(frozen=True)
class Settings:
    """Everything a worker, the simulator and the CLI need; one code path for laptop and cluster."""

    broker: str = "kafka://127.0.0.1:9092"
    clickhouse: Secret = Secret("chdb://./.promo/store")
    topic_prefix: str = "promo."
    # The input topics' prefix when it differs from the pipeline's own topics (several pipelines,
    # or a benchmark's peers, reading the same inputs). Empty: the same as `topic_prefix`.
    input_prefix: str = ""
    app_id: str = "promo-pipeline"
    partitions: int = 4
    data_dir: Path = Path(".promo")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    sink: bool = True
    # The local view of the dashboards (streams/dashboards/view/), served by the worker that runs the sink.
    # Port 0: off. Beyond loopback it needs a token (streams/dashboards/view/auth.py).
    view_host: str = "127.0.0.1"
    view_port: int = 8080
    view_token: Secret = Secret("")
    allowed_lateness_s: float = 600.0
    dedup_horizon_s: float = 1800.0
    future_limit_s: float = 3600.0
    max_value_bytes: int = 1_048_576
    snapshot_interval_s: float = 2.0  # how often stage 2 saves its local state snapshot
    # Users of one routed partition kept in memory; the others wait in the local RocksDB snapshot
    # and are read back when they return (streams/aggregate/state.py). About 1 KB each. 0: all in memory.
    user_cache: int = 100_000
    batch_size: int = 10_000  # records per fetch handed to an agent at once (Faust's max poll records)
    rebalance_timeout_s: float = 2.0
    # How long the group waits for a silent (killed) worker before handing its partitions on.
    session_timeout_s: float = 10.0
    # How long one ClickHouse request may take before it counts as failed (and is retried).
    clickhouse_timeout_s: float = 30.0
    # A stage with input waiting (lag above zero) that processes nothing this long is stalled:
    # /health answers 503 and the worker logs it (streams/worker/stall.py).
    stall_after_s: float = 30.0
    # More events than this waiting in the pipeline's inputs and the screens say "behind" (a banner
    # on the local view, the state on /api/status): its numbers are then minutes old, not seconds.
    behind_events: int = 50_000
    # Identity audit for fault tests: stage 2 adds to each deltas message which order, and which
    # event holding a person's credit, its numbers moved (streams/aggregate/audit.py). Off: the wire as ever.
    audit: bool = False
    # The drop detector (streams/alerts/), run every 10 s by the worker that runs the sink; `promo demo`
    # turns it on. Its messages' language ("zh" or "en") and the dashboard their links open.
    alerts: bool = False
    alerts_language: str = "zh"
    dashboard_url: str = ""

    def __post_init__(self) -> None:
        shown = ";".join(redact_dsn(url) for url in self.broker.split(";"))
        if not self.broker.startswith("kafka://"):
            raise ConfigError(f"broker must look like kafka://host:port, got {shown!r}")
        if "@" in self.broker:  # the Kafka clients would take it for the host, and say it in their errors
            raise ConfigError(f"broker must be kafka://host:port without user:password, got {shown!r}")
        for url in self.broker.split(";"):
            # The clients read a port that is no number as a traceback, and `:-1` as the default 9092
            # (another broker's, if one listens there): an outside probe. No port is 9092, as before.
            if _broker_problem(url.removeprefix("kafka://")):
                raise ConfigError(f"broker must be kafka://host:port (port 1-65535; several: "
                                  f"kafka://a:9092;kafka://b:9092), got {shown!r}")  # fmt: skip
        dsn = self.clickhouse.value
        if not dsn.startswith(("chdb://", "http://", "https://")):
            raise ConfigError("clickhouse must be a chdb:///path or http(s):// DSN")
        if not dsn.startswith("chdb://") and (problem := _dsn_problem(dsn)) is not None:
            raise ConfigError(
                f"clickhouse must be http(s)://[user[:password]@]host[:port 1-65535]/, got {redact_dsn(dsn)!r}: "
                f"{scrub(problem, *dsn_secrets(dsn))}"
            )
        # The store is a directory with a name: its owner and detector files are named after it, beside it.
        store = self.embedded_store
        if store is not None and store.name in ("", ".."):
            raise ConfigError(f"clickhouse must name the store's directory, as chdb:///path/to/store; got {dsn!r}")
        # Kafka refuses other topic names; the embedded broker took them, so a name that worked on a
        # laptop failed on the cluster.
        longest = max(len(str(t)) for t in Topic)
        for what, prefix, empty_ok in (
            ("topic prefix", self.topic_prefix, False),
            ("input prefix", self.input_prefix, True),
        ):
            if (prefix or not empty_ok) and (not _TOPIC_CHARS.fullmatch(prefix) or len(prefix) + longest > _TOPIC_MAX):
                raise ConfigError(
                    f"{what} must be letters, digits, '.', '_' or '-', at most {_TOPIC_MAX - longest} of them "
                    f"(Kafka's topic names), got {prefix!r}"
                )
        if self.user_cache < 0:
            raise ConfigError(f"user cache must be 0 (unbounded) or a number of users, got {self.user_cache}")
        if not 1 <= self.partitions <= 1024:
            raise ConfigError(f"partitions must be between 1 and 1024, got {self.partitions}")
        if not 0 < self.web_port < 65536:
            raise ConfigError(f"web port must be 1-65535, got {self.web_port}")
        if not 0 <= self.view_port < 65536:
            raise ConfigError(f"view port must be 0 (off) or 1-65535, got {self.view_port}")
        # One rule for every duration: a number of seconds above zero. `float()` takes nan and inf,
        # which pass a `<= 0` test and fail only when turned into milliseconds, after a stream went out.
        for f in fields(self):
            if f.type == "float" and not (math.isfinite(value := getattr(self, f.name)) and 0 < value <= MAX_SECONDS):
                raise ConfigError(
                    f"{_variable(f.name)} must be a positive number of seconds, got {value} "
                    f"(at most {MAX_SECONDS:.0f}: a year)"
                )
        for name, least in (("max_value_bytes", 1), ("batch_size", 1), ("behind_events", 0)):
            if getattr(self, name) < least:
                raise ConfigError(f"{_variable(name)} must be at least {least}, got {getattr(self, name)}")
        if self.alerts_language not in ("zh", "en"):
            raise ConfigError(f"alerts language must be zh or en, got {self.alerts_language!r}")
        if self.dashboard_url and _dashboard_problem(self.dashboard_url):
            # Every alert message carries it as its link (an outside probe: 'not a url?from=...')
            raise ConfigError(
                f"{_variable('dashboard_url')} must be an http(s)://host[:port]/path URL without spaces, "
                f"got {redact_dsn(self.dashboard_url)[:100]!r}"
            )

    # -- derived names -------------------------------------------------------------------------
    def topic(self, suffix: str) -> str:
        """The full name of one of the pipeline's topics (streams/contract/topics.py names them all)."""
        name = Topic(suffix)  # a ValueError for a name that is not one of ours
        if self.input_prefix and name in INPUT_TOPICS:
            return f"{self.input_prefix}{name}"
        return f"{self.topic_prefix}{name}"

    @property
    def bootstrap(self) -> str:
        """host:port list for the plain Kafka clients."""
        return ",".join(u.removeprefix("kafka://") for u in self.broker.split(";"))

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse.value

    @property
    def embedded_store(self) -> Path | None:
        """The chdb store directory when ClickHouse is embedded, else None."""
        dsn = self.clickhouse.value
        if not dsn.startswith("chdb://"):
            return None
        return Path(dsn.removeprefix("chdb://"))

    @property
    def web_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def view_url(self) -> str | None:
        """Where the local view answers, or None when it is off."""
        if self.view_port == 0:
            return None
        host = f"[{self.view_host}]" if ":" in self.view_host else self.view_host
        return f"http://{host}:{self.view_port}/"

    @property
    def allowed_lateness_ms(self) -> int:
        return int(self.allowed_lateness_s * 1000)

    @property
    def dedup_horizon_ms(self) -> int:
        return int(self.dedup_horizon_s * 1000)

    @property
    def future_limit_ms(self) -> int:
        return int(self.future_limit_s * 1000)

    @property
    def limits(self) -> Limits:
        """The contract's windows, as the pure stages take them."""
        return Limits(self.allowed_lateness_ms, self.dedup_horizon_ms, self.future_limit_ms, self.max_value_bytes)

    @property
    def stages(self) -> StageConfig:
        """What the pure stages take instead of the Settings (streams/contract/limits.py)."""
        inputs = tuple((str(t), self.topic(t)) for t in INPUTS)
        return StageConfig(self.limits, self.partitions, inputs, self.audit)

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None values replaced (CLI flags win over the environment)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for secret in ("clickhouse", "view_token"):
            if secret in given and isinstance(given[secret], str):
                given[secret] = Secret(given[secret])
        return replace(self, **given)


def request_timeout_s(settings: Settings) -> float:
    """A Kafka request's timeout for the workers' consumers: above the session timeout (a group join
    waits up to it for the members it knew) and the rebalance timeout, and never below the clients'
    defaults (aiokafka 40 s, Faust 90 s: Faust refuses a session timeout above its request timeout)."""
    return max(90.0, settings.session_timeout_s + 30.0, settings.rebalance_timeout_s + 30.0)


def _dashboard_problem(url: str) -> bool:
    """Is the dashboard link no URL a browser opens (no http(s) scheme or host, spaces, a bad port)?"""
    if any(c.isspace() or not c.isprintable() for c in url):
        return True
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return True
    return parts.scheme not in ("http", "https") or not parts.hostname or not port_ok


def _variable(name: str) -> str:
    """The environment variable a setting is read from, for messages."""
    return f"{ENV_PREFIX}{name.upper()}"


def _coerce(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        if isinstance(default, Secret):
            return Secret(raw)
    except ValueError:
        raise ConfigError(f"{_variable(name)}={raw!r} is not a valid value") from None
    return raw


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `PROMO_*` variables, then CLI overrides; the data dir anchors relative stores."""
    env = os.environ if environ is None else environ
    base = Settings()
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(f"{ENV_PREFIX}{f.name.upper()}")
        default = getattr(base, f.name)
        if raw == "" and str(default) != "":  # set but empty is not the default in silence; where the default is
            # empty (no view token, no input prefix), empty is that (PROMO_VIEW_TOKEN=${TOKEN:-})
            raise ConfigError(f"{_variable(f.name)} is set but empty: give it a value, or unset it for the default")
        if raw == "":
            continue
        if raw is not None:
            values[f.name] = _coerce(f.name, raw, getattr(base, f.name))
    settings = replace(base, **values).with_overrides(**overrides)
    if "clickhouse" not in values and overrides.get("clickhouse") is None:
        store = settings.data_dir / "store"
        settings = replace(settings, clickhouse=Secret(f"chdb://{store.resolve()}"))
    return settings

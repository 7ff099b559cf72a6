"""Running real pipeline processes on one machine: for `promo chaos`, `promo demo` and the tests.

A `Pipeline` names one isolated pipeline (its own topic prefix, consumer groups and store) on a
broker; `WorkerProcess` is one `promo worker` child with its own web port, always on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.config import Settings, load_settings
from streams.kafka import free_port

PROMO = str(Path(sys.executable).with_name("promo"))


@dataclass
class Pipeline:
    """The settings of one isolated pipeline, as environment variables and as Settings."""

    broker_url: str
    root: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}.")
    partitions: int = 4
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Path:
        return self.root / "store"

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMO_")}
        env.update({
            "PROMO_BROKER": self.broker_url,
            "PROMO_CLICKHOUSE": f"chdb://{self.store}",
            "PROMO_TOPIC_PREFIX": self.prefix,
            "PROMO_APP_ID": f"{self.prefix}app",
            "PROMO_PARTITIONS": str(self.partitions),
            "PROMO_DATA_DIR": str(self.root),
            "PROMO_REBALANCE_TIMEOUT_S": "1",
            "PROMO_SESSION_TIMEOUT_S": "6",
            "PROMO_VIEW_PORT": "0",  # no local view unless asked: many pipelines share this host
        })  # fmt: skip
        env.update(self.extra)
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(self.environ(), **overrides)

    def promo(
        self, *args: str, input_text: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own command
            [PROMO, *args], env=self.environ(), capture_output=True, text=True, input=input_text,
            timeout=timeout, check=False,
        )  # fmt: skip


class WorkerProcess:
    """One `promo worker` child process; `view_port` serves the local view there (0: none)."""

    def __init__(
        self,
        pipeline: Pipeline,
        name: str,
        *,
        sink: bool,
        loglevel: str = "info",
        port: int | None = None,
        view_port: int = 0,
    ) -> None:
        self.pipeline = pipeline
        self.name = name
        self.sink = sink
        self.loglevel = loglevel
        self.port = port or free_port()
        self.view_port = view_port
        self.log_path = pipeline.root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, env: dict[str, str] | None = None) -> WorkerProcess:
        """Start the worker; `env` adds variables for this start only (a crash point, say)."""
        self.pipeline.root.mkdir(parents=True, exist_ok=True)
        extra = {
            "PROMO_WEB_PORT": str(self.port),
            "PROMO_SINK": "1" if self.sink else "0",
            "PROMO_VIEW_PORT": str(self.view_port),
            **(env or {}),
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own command
                [PROMO, "worker", "--loglevel", self.loglevel], env=self.pipeline.environ(**extra),
                stdout=log, stderr=log,
            )  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no commit."""
        if self.alive and self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def get(self, path: str, timeout: float = 10) -> Any:
        return get_json(f"{self.url}{path}", timeout)

    def try_get(self, path: str) -> Any:
        return try_get_json(f"{self.url}{path}")

    def log(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""


def get_json(url: str, timeout: float = 10) -> Any:
    """GET a worker's JSON endpoint (loopback); an HTTP error's body is returned as the answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # /health answers 503 with a body while failing
        return json.loads(exc.read())


def try_get_json(url: str) -> Any:
    """`get_json`, or None while the worker does not answer."""
    try:
        return get_json(url)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_until(
    worker: WorkerProcess,
    path: str,
    expected: Any,
    timeout: float = 120,
    read: Callable[[Any], Any] | None = None,
) -> Any:
    """Poll a worker's JSON endpoint until it returns `expected` (after `read`, when given, turns
    an answer into what is compared); returns the last answer, as read."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if not worker.alive:
            raise RuntimeError(f"worker {worker.name} died:\n{worker.log()}")
        last = worker.try_get(path)
        if last is not None and read is not None:
            last = read(last)
        if last == expected:
            return last
        time.sleep(0.5)
    return last

"""Fixtures for integration tests: the real embedded broker and real workers (chdb store).

One broker serves the session; each test gets its own topic prefix and consumer group, so tests
do not see each other's data. Workers are real `promo worker` processes; every fixture stops what
it starts, also when the test fails.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings, load_settings
from streams.kafka import EmbeddedBroker, free_port

PROMO = str(Path(sys.executable).with_name("promo"))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(free_port(), log_path=log) as embedded:
        yield embedded


@dataclass
class Env:
    """The settings one test's pipeline runs with, as environment variables and as Settings."""

    broker: EmbeddedBroker
    root: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}.")
    partitions: int = 4

    @property
    def store(self) -> Path:
        return self.root / "store"

    def environ(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PROMO_")}
        env.update({
            "PROMO_BROKER": self.broker.url,
            "PROMO_CLICKHOUSE": f"chdb://{self.store}",
            "PROMO_TOPIC_PREFIX": self.prefix,
            "PROMO_APP_ID": f"{self.prefix}app",
            "PROMO_PARTITIONS": str(self.partitions),
            "PROMO_DATA_DIR": str(self.root),
            "PROMO_REBALANCE_TIMEOUT_S": "1",
        })  # fmt: skip
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(self.environ(), **overrides)

    def promo(
        self, *args: str, input_text: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PROMO, *args], env=self.environ(), capture_output=True, text=True, input=input_text,
            timeout=timeout, check=False,
        )  # fmt: skip


@pytest.fixture
def env(broker: EmbeddedBroker, tmp_path: Path) -> Env:
    return Env(broker, tmp_path)


class Worker:
    """A `promo worker` process."""

    def __init__(self, env: Env, name: str, *, sink: bool) -> None:
        self.env = env
        self.name = name
        self.sink = sink
        self.port = free_port()
        self.log_path = env.root / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Worker:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        extra = {"PROMO_WEB_PORT": str(self.port), "PROMO_SINK": "1" if self.sink else "0"}
        self.process = subprocess.Popen(
            [PROMO, "worker", "--loglevel", "info"], env=self.env.environ(**extra), stdout=log, stderr=log
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
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

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@pytest.fixture
def workers(env: Env) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def start_worker(workers: list[Worker], env: Env, name: str, *, sink: bool) -> Worker:
    worker = Worker(env, name, sink=sink).start()
    workers.append(worker)
    return worker


def wait_for(worker: Worker, path: str, expected: Any, timeout: float = 120) -> Any:
    """Poll a worker's JSON endpoint until it returns `expected`; returns the last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert worker.process is not None and worker.process.poll() is None, f"worker died:\n{worker.log()}"
        try:
            last = worker.get(path)
        except (urllib.error.URLError, OSError, ValueError):
            last = None
        if last == expected:
            return last
        time.sleep(0.5)
    return last

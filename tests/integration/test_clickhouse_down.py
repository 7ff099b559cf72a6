"""The server path when ClickHouse is not there: an HTTP endpoint on loopback that refuses
connections, or accepts them and never answers. The worker must stay up, retry, and say so on
/health (HTTP 503 with the error), not crash and not pretend to be healthy."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from streams.kafka import free_port
from streams.kit.harness import Pipeline, WorkerProcess
from tests.integration.conftest import start_worker

pytestmark = pytest.mark.integration


@pytest.fixture
def stalling_endpoint() -> Iterator[int]:
    """Accepts TCP connections on loopback and never answers; closes them all at the end."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in held:
        conn.close()
    server.close()


def health_when_failing(worker: WorkerProcess, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        assert worker.alive, worker.log()
        last = worker.try_get("/health") or {}
        sink = last.get("sink")
        if isinstance(sink, dict) and int(sink.get("failures", 0)) >= 2:
            return last
        time.sleep(0.5)
    return last


@pytest.mark.parametrize("mode", ["refused", "stalled"])
def test_worker_stays_up_and_reports_clickhouse_down(
    env: Pipeline, workers: list[WorkerProcess], stalling_endpoint: int, mode: str
) -> None:
    port = free_port() if mode == "refused" else stalling_endpoint
    env.extra.update({
        "PROMO_CLICKHOUSE": f"http://default:secret-pw@127.0.0.1:{port}/",
        "PROMO_CLICKHOUSE_TIMEOUT_S": "1",
    })  # fmt: skip
    worker = start_worker(workers, env, f"ch-{mode}", sink=True)
    health = health_when_failing(worker)
    assert health.get("ok") is False, health
    sink = health["sink"]
    assert isinstance(sink, dict) and "schema" in str(sink["last_error"]), sink
    assert "secret-pw" not in worker.log(tail=200_000)  # the password never reaches the log
    assert worker.alive

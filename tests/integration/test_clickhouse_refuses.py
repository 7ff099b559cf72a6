"""A ClickHouse server that refuses us: one line, exit 2, and never the credentials, even when the
server echoes the request's Authorization header in its error (an outside probe found
`base64(user:password)` in `promo totals`' message and eight times in a worker's log, and a worker
that died with a page of tracebacks around the error). A loopback stand-in for the server: no
ClickHouse server can be installed on these machines."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.unit.test_cli import promo

pytestmark = pytest.mark.integration

PASSWORD = "s3cr3tPW"  # made up, for this stand-in only
ENCODED = base64.b64encode(f"writer:{PASSWORD}".encode()).decode()


class _Refusing(BaseHTTPRequestHandler):
    """Answers every request as a ClickHouse server with bad credentials does, plus an echo of what it got."""

    def _answer(self) -> None:
        said = self.headers.get("Authorization", "") or self.headers.get("X-ClickHouse-Key", "")
        body = (
            f"Code: 516. DB::Exception: writer: Authentication failed: password is incorrect, or there is no "
            f"user with such name. (AUTHENTICATION_FAILED) (auth was {said}, key {PASSWORD})"
        ).encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(401)
        self.send_header("X-ClickHouse-Exception-Code", "516")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://writer:{PASSWORD}@127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _one_line(stderr: str, *wanted: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("promo: error:"), stderr
    assert "Traceback" not in stderr and PASSWORD not in stderr and ENCODED not in stderr, stderr
    for text in wanted:
        assert text in lines[0], lines[0]


def test_totals_against_a_refusing_server_is_one_line_without_the_password(refusing_server: str) -> None:
    done = promo("totals", "--clickhouse", refusing_server)
    assert done.returncode == 2 and done.stdout == ""
    _one_line(done.stderr, "AUTHENTICATION_FAILED", "auth was Basic ********")


def test_a_worker_refused_by_clickhouse_stops_before_it_starts(refusing_server: str, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {"PROMO_DATA_DIR": str(tmp_path), "PROMO_BROKER": "kafka://127.0.0.1:1", "PROMO_VIEW_PORT": "0"}
    done = promo("worker", "--clickhouse", refusing_server, "--web-port", str(port), env=env)
    assert done.returncode == 2, done.stderr
    _one_line(done.stderr, "refuses this worker (code 516)", "AUTHENTICATION_FAILED")

"""`promo broker` runs tansu in a session of its own, so a SIGKILL of `promo broker` left tansu
listening on its port with no parent, and the next `promo broker --port` said the port was in use
(an outside probe). Now tansu stops with the process that started it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from streams.kafka import wait_for_port
from tests.helpers import proc_alive, proc_children
from tests.unit.test_cli import PROMO

pytestmark = pytest.mark.integration


def test_a_sigkilled_broker_command_takes_tansu_with_it() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parent = subprocess.Popen([PROMO, "broker", "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    tansu: list[int] = []
    try:
        assert wait_for_port("127.0.0.1", port, 30), "the broker did not start"
        tansu = list(proc_children(parent.pid))
        assert len(tansu) == 1, tansu
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while proc_alive(tansu[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not proc_alive(tansu[0]), "tansu outlived the promo broker that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        for pid in tansu:
            if proc_alive(pid):
                os.kill(pid, signal.SIGKILL)

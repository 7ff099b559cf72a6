"""The same job written with quixstreams: a peer for `promo bench`.

`python -m streams.lab.peers.quix --bootstrap H:P --prefix P --partitions N --work-dir D ...` reads the
pipeline's three input topics (and an import topic of existing buyers), and writes the campaign
totals to a chdb store of its own under D. As a dataflow:

    clicks ─┐ per input partition (State: the watermark):
    shares ─┼─ decode + validate → future / late ─┐
    orders ─┘                                     ├─ concat → group_by(user_id) → per user (State:
    existing buyers ─ explode ────────────────────┘   dedup ids, earliest credits) → deltas → sink

State is quixstreams' own (RocksDB under D/state, with its changelog topics). The sink sums each
checkpoint's deltas per (campaign, channel) and inserts them (streams/lab/peers/store.py).

Input keys are ignored (`_NoKey`): no number depends on them, and quixstreams scopes State by the
message key, so with the producers' keys the watermark would be per key instead of per partition.
With every key None, the first step's State is exactly its partition's.

The peer stops itself once it has taken every expected message and the per-user step has applied
every row it routed; stopping commits the last checkpoint, which flushes the sink.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from quixstreams import Application, State
from quixstreams.models import Deserializer, SerializationContext, TopicConfig
from quixstreams.sinks import BatchingSink, SinkBatch

from streams.aggregate.user import apply_event, mark_existing
from streams.config import Settings
from streams.contract.events import Kind
from streams.contract.facts import Deltas
from streams.contract.limits import Limits
from streams.ingest.gate import PartitionGate
from streams.lab.peers.job import (
    EXISTING_KIND,
    admitted,
    delta_rows,
    event_row,
    existing_row,
    existing_users,
    row_event,
    row_user,
    state_doc,
    sum_rows,
    user_state,
)
from streams.lab.peers.process import PeerArgs, Progress, exit_when_stdin_closes, mark_ready, parse_args, write_result
from streams.lab.peers.store import PeerStore

KIND = "quix"
WATERMARK = "watermark"
USER = "user"
ROUTED_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}  # explicit: quixstreams derives from it


class _NoKey(Deserializer):
    """Every input message as unkeyed (see the module docstring)."""

    def __call__(self, value: bytes, ctx: SerializationContext) -> None:
        return None


class TotalsSink(BatchingSink):
    """At each checkpoint, one INSERT per repartition partition of the summed deltas."""

    def __init__(self, store: PeerStore) -> None:
        super().__init__()
        self.store = store

    def write(self, batch: SinkBatch) -> None:
        self.store.insert(sum_rows([item.value for item in batch]))


def gate_step(kind: Kind, limits: Limits, progress: Progress) -> Any:
    """Decode one input message and pass its elements through the partition's gate."""

    def step(value: bytes | None, key: Any, timestamp: int, headers: Any, state: State[Any, Any]) -> list[list[Any]]:
        gate = PartitionGate(limits.lateness_ms, limits.future_ms, state.get(WATERMARK, -1))
        before = gate.watermark
        # The contract's clock: the record's timestamp, or ours when it carries none.
        clock_ms = timestamp if timestamp > 0 else int(time.time() * 1000)
        events, elements = admitted(kind, value, gate, clock_ms, limits, progress.rejected)
        progress.elements += elements
        rows = [event_row(item) for item in events]
        if gate.watermark != before:
            state.set(WATERMARK, gate.watermark)
        progress.routed += len(rows)
        return rows

    return step


def existing_step(progress: Progress) -> Any:
    def step(value: bytes | None) -> list[list[Any]]:
        rows = [existing_row(user) for user in existing_users(value)]
        progress.routed += len(rows)
        return rows

    return step


def user_step(limits: Limits, progress: Progress) -> Any:
    """Apply one routed row to its user's state; returns the campaign_totals deltas it causes."""

    def step(row: list[Any], state: State[Any, Any]) -> list[list[Any]]:
        progress.owned += 1
        user = user_state(state.get(USER))
        out = Deltas()
        if row[0] == EXISTING_KIND:
            mark_existing(user, out)
        elif apply_event(user, row_event(row), out, horizon_ms=limits.horizon_ms) is None:
            progress.accepted += 1
        else:
            progress.rejected["duplicate"] += 1
        state.set(USER, state_doc(user))
        return delta_rows(out)

    return step


def build(args: PeerArgs, store: PeerStore, progress: Progress) -> Application:
    limits = Settings().limits
    inputs = {*args.inputs, args.existing_topic}

    def on_processed(topic: str, partition: int, offset: int) -> None:
        if topic in inputs:
            progress.inputs += 1
        if progress.done:
            app.stop()

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=f"{args.prefix}peer-{KIND}",
        auto_offset_reset="earliest",
        commit_interval=1.0,  # the pipeline commits every second too
        state_dir=str(args.work_dir / "state"),
        loglevel=args.loglevel,  # type: ignore[arg-type]  # parse_args upper-cases; quixstreams checks the name
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 20},
        on_message_processed=on_processed,
    )
    # Gate-passed events and imports, keyed by user: the pipeline's `routed`, as a plain topic.
    routed = app.topic(
        f"{args.prefix}peer-{KIND}.routed", key_serializer="str", key_deserializer="str",
        config=TopicConfig(num_partitions=args.partitions, replication_factor=1, extra_config=ROUTED_CONFIG),
    )  # fmt: skip
    for kind in Kind:
        no_key = _NoKey()  # type: ignore[no-untyped-call]  # quixstreams' Deserializer.__init__ is untyped
        topic = app.topic(f"{args.prefix}{kind.topic_suffix}", key_deserializer=no_key, value_deserializer="bytes")
        gate = gate_step(kind, limits, progress)
        app.dataframe(topic).apply(gate, stateful=True, expand=True, metadata=True).to_topic(routed, key=row_user)
    imports = app.topic(args.existing_topic, value_deserializer="bytes")
    app.dataframe(imports).apply(existing_step(progress), expand=True).to_topic(routed, key=row_user)
    owned = app.dataframe(routed).apply(user_step(limits, progress), stateful=True, expand=True)
    owned.sink(TotalsSink(store))
    return app


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv, "the promo job in quixstreams (a peer for promo bench)")
    logging.basicConfig(level=args.loglevel, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    exit_when_stdin_closes()
    progress = Progress(expected_inputs=args.expected_messages + args.existing_messages)
    store = PeerStore.embedded(args.work_dir / "store")
    store.apply_schema()
    app = build(args, store, progress)
    ready = mark_ready(args.work_dir)
    app.run()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # quixstreams' handler would only stop the stopped app
    if not progress.done:
        raise SystemExit(f"quix peer stopped before the end: {progress}")
    write_result(args.work_dir, ready, progress, store.totals())
    threading.Event().wait()  # until the bench closes stdin (exit_when_stdin_closes)


if __name__ == "__main__":
    main()

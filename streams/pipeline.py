"""The two processing stages as plain objects; agents feed them batches and ship what they return.

Stage 1, `Ingest`: input message → elements → contract check → partition gate (future/late) →
accepted events routed by user, rejections routed by source. Its only state is the watermark of
each input partition, a function of that partition's content, so it can always be rebuilt.

Stage 2, `RoutedPartition`: owns one partition of the routed topic and the users routed to it. Its
state is a pure fold over the routed partition from offset 0, which is what makes recovery exact:
rebuild by replaying with outputs muted up to the last offset whose deltas were already emitted.
Replays of stage 1 (after its own restart) are recognised by (source, offset, index) and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from streams import audit
from streams.config import Settings
from streams.events import Event, Kind, Reason, Rejection, decode_items
from streams.metrics import Deltas, PartitionGate, RejectKey, apply_fields, mark_existing, minute_of
from streams.state import UserCache
from streams.wire import (
    REJECT_KIND,
    encode_existing,
    encode_routed,
    event_item,
    item_event,
    reject_item,
    route,
    route_source,
)

if TYPE_CHECKING:
    from streams.simulate import Record


@dataclass(frozen=True)
class DeadLetter:
    """One record for the dead-letter topic."""

    value: bytes
    reason: str
    detail: str
    source: str  # "topic:partition:offset:index"

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("reason", self.reason.encode()),
            ("detail", self.detail.encode()[:512]),
            ("source", self.source.encode()),
        ]


@dataclass
class IngestOutput:
    """What one stage-1 batch sends: routed items per partition and dead letters."""

    routed: dict[int, list[list[Any]]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    max_ingest_ms: int = 0
    elements: int = 0
    generation: int = 0  # the consumer generation the inputs were read in
    watermarks: dict[str, int] = field(default_factory=dict)  # input partition -> gate watermark

    def messages(self) -> list[tuple[int, bytes]]:
        # Every message carries every watermark of the batch: each routed partition must learn how
        # far every input partition is, to know which dedup ids no copy can reach any more.
        return [
            (p, encode_routed(items, self.max_ingest_ms, self.generation, self.watermarks))
            for p, items in sorted(self.routed.items())
        ]


class Ingest:
    """Stage 1 for every input partition this worker owns."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.partitions = settings.partitions
        self.gates: dict[str, PartitionGate] = {}
        self.kinds = {settings.topic(k.topic_suffix): k for k in Kind}
        # topic -> partition -> "topic:partition": formatting it anew was 3% of a one-event message.
        self.srcs: dict[str, dict[int, str]] = {topic: {} for topic in self.kinds}

    def new_gate(self) -> PartitionGate:
        return PartitionGate(self.settings.allowed_lateness_ms, self.settings.future_limit_ms)

    def has_gate(self, topic: str, partition: int) -> bool:
        return f"{topic}:{partition}" in self.gates

    def set_gate(self, topic: str, partition: int, gate: PartitionGate) -> None:
        self.gates[f"{topic}:{partition}"] = gate

    def forget(self, topic: str, partition: int) -> None:
        self.gates.pop(f"{topic}:{partition}", None)

    def process(
        self, topic: str, partition: int, offset: int, timestamp_ms: int, value: bytes | None, out: IngestOutput
    ) -> None:
        """Judge every element of one input message, in order, adding to `out`."""
        kind = self.kinds[topic]
        srcs = self.srcs[topic]
        src = srcs.get(partition)
        if src is None:
            src = srcs[partition] = f"{topic}:{partition}"
        gate = self.gates.get(src)
        if gate is None:
            gate = self.gates[src] = self.new_gate()
        if timestamp_ms > out.max_ingest_ms:
            out.max_ingest_ms = timestamp_ms
        elements = decode_items(kind, value, src, offset, self.settings.max_value_bytes)
        out.elements += len(elements)
        routed = out.routed
        for index, element in enumerate(elements):
            if isinstance(element, Event):  # well-formed, but in a shape decode_items leaves to parse_event
                element = event_item(src, offset, index, element)
            if isinstance(element, list):
                ts, user_id = element[5], element[6]  # the event item of streams/wire.py
                reason = gate.admit(ts, timestamp_ms)
                if reason is None:
                    # Plain route(): a per-user cache of it measured slower than crc32 of a short id.
                    dest = route(user_id, self.partitions)
                    bucket = routed.get(dest)
                    if bucket is None:
                        bucket = routed[dest] = []
                    bucket.append(element)
                    continue
                ev = item_event(element)
                # A lone object's original bytes go to the DLQ as sent; array elements are re-encoded.
                raw = value if value is not None and len(elements) == 1 and value.lstrip()[:1] == b"{" else ev.to_json()
                element = Rejection(reason, f"ts={ts}", raw, ts, ev.campaign_id, ev.channel)
            dest = route_source(src, self.partitions)
            out.routed.setdefault(dest, []).append(reject_item(src, offset, index, element, kind.topic_suffix))
            out.dead.append(DeadLetter(element.raw, element.reason, element.detail, f"{src}:{offset}:{index}"))
        out.watermarks[src] = gate.watermark

    def replay(self, topic: str, partition: int, timestamp_ms: int, value: bytes | None) -> None:
        """Advance a gate over a message already judged before a restart (no output kept)."""
        self.process(topic, partition, 0, timestamp_ms, value, IngestOutput())


@dataclass
class PartitionOutput:
    """What one routed partition emits for a batch."""

    deltas: Deltas = field(default_factory=Deltas)
    dead: list[DeadLetter] = field(default_factory=list)
    to_offset: int = -1
    max_event_ts: int = 0
    max_ingest_ms: int = 0
    audit: list[list[Any]] = field(default_factory=list)  # identity moves, when auditing (streams/audit.py)

    def __bool__(self) -> bool:
        return bool(self.deltas) or bool(self.dead) or bool(self.audit)


class RoutedPartition:
    """Stage 2 for one partition of the routed topic: exact per-user state and the deltas it emits."""

    def __init__(self, partition: int, settings: Settings, emitted_to: int = -1) -> None:
        self.partition = partition
        self.horizon_ms = settings.dedup_horizon_ms
        self.lateness_ms = settings.allowed_lateness_ms
        self.input_partitions = 3 * settings.partitions  # clicks, shares, orders
        self.users = UserCache()  # unbounded until the agent attaches a snapshot (streams/state.py)
        # Per input partition: the newest consumer generation seen, and the highest (offset, index).
        self.src_seen: dict[str, tuple[int, int, int]] = {}
        self.emitted_to = emitted_to  # routed offsets up to here already have their output out
        self.next_offset = 0  # the routed offset this state has been folded up to (exclusive)
        self.src_watermark: dict[str, int] = {}  # input partition -> newest stage-1 watermark heard
        self.forget_before: int | None = None  # dedup ids older than this can no longer be matched
        self.audit = settings.audit

    def apply(self, offset: int, value: bytes, out: PartitionOutput) -> None:
        """Fold one routed message in; output goes to `out` unless it was emitted before a restart."""
        muted = offset <= self.emitted_to
        sink = PartitionOutput() if muted else out
        self.next_offset = max(self.next_offset, offset + 1)
        doc = orjson.loads(value)
        existing = doc.get("existing")
        if existing is not None:
            for user_id in existing:
                state = self.users.take(user_id)
                before = audit.holders(state) if self.audit else None
                mark_existing(state, sink.deltas)
                if before is not None:
                    audit.moves(user_id, "", before, audit.holders(state), sink.audit)
        else:
            sink.max_ingest_ms = max(sink.max_ingest_ms, doc["ing"])
            generation = doc.get("gen", 0)
            for item in doc["items"]:
                self._apply_item(item, generation, sink)
            # After the items: a message's watermarks are where stage 1 stood at the END of its
            # batch, while its items passed the gate earlier, against lower watermarks. Heard
            # first, they could drop an id that a copy in this very message still has to match.
            self.hear_watermarks(doc.get("wm", {}))
        if not muted:
            out.to_offset = offset

    def hear_watermarks(self, watermarks: dict[str, int]) -> None:
        for src, mark in watermarks.items():
            if mark > self.src_watermark.get(src, -1):
                self.src_watermark[src] = mark
        # A copy can still arrive from input partition s only with ts >= watermark(s) - lateness;
        # an id more than the horizon below that, for every s, can never match again. Until every
        # input partition has been heard from, a first event anywhere may carry any ts: keep all.
        if len(self.src_watermark) >= self.input_partitions:
            self.forget_before = min(self.src_watermark.values()) - self.lateness_ms - self.horizon_ms

    def _apply_item(self, item: list[Any], generation: int, out: PartitionOutput) -> None:
        src, offset, index = item[0], item[1], item[2]
        seen = self.src_seen.get(src)
        if seen is not None:
            seen_generation, seen_offset, seen_index = seen
            if (offset, index) <= (seen_offset, seen_index):
                return  # stage 1 replayed this after a restart; it was counted the first time
            if generation < seen_generation:
                # A stage-1 owner that lost the partition (a zombie after a session timeout) is
                # still sending. The current owner re-reads everything from the committed offset,
                # so dropping the zombie's items loses nothing, while taking them could make the
                # current owner's earlier items look like replays.
                return
            generation = max(generation, seen_generation)
        self.src_seen[src] = (generation, offset, index)
        if item[3] == REJECT_KIND:
            reason, ts, campaign, channel, topic = item[4], item[5], item[6], item[7], item[8]
            out.deltas.reject(RejectKey(topic, reason, campaign, channel, minute_of(ts)))
            return
        # The item's fields as they are: an `Event` per item was a tenth of stage 2. Only a
        # duplicate, rare, is turned back into one (for the dead letter).
        kind, event_id, ts, user_id, campaign, channel, entry, tier, share_id, order_id, amount = item[3:14]
        state = self.users.take(user_id)
        if ts > out.max_event_ts:
            out.max_event_ts = ts
        before = audit.holders(state, campaign) if self.audit else None
        if apply_fields(state, kind, event_id, ts, campaign, channel, entry, tier, share_id, order_id, amount,
                        out.deltas, self.horizon_ms, self.forget_before):  # fmt: skip
            ev = item_event(item)
            topic = ev.kind.topic_suffix
            out.deltas.reject(RejectKey(topic, Reason.DUPLICATE, ev.campaign_id, ev.channel, minute_of(ev.ts)))
            out.dead.append(DeadLetter(ev.to_json(), Reason.DUPLICATE, ev.event_id, f"{src}:{offset}:{index}"))
        elif before is not None:
            if kind == Kind.ORDER:
                out.audit.append(audit.order_row(user_id, order_id, event_id, campaign, channel))
            audit.moves(user_id, campaign, before, audit.holders(state, campaign), out.audit)


def fold_in_process(
    records: Iterable[Record], existing_buyers: Iterable[str], settings: Settings, ledger: audit.Ledger | None = None
) -> tuple[Deltas, dict[int, int], int]:
    """Both stages in one process, in send order, as the agents run them but with no broker:
    (the summed deltas, the last routed offset of each partition, the newest input timestamp).
    Imports come first, as `promo users import` before traffic. For tests and the dashboard bench.
    With `settings.audit`, each routed message's identity rows go into `ledger`."""
    ingest, out, offsets = Ingest(settings), IngestOutput(), dict[tuple[str, int], int]()
    for record in records:
        offset = offsets.get((record.kind, record.partition), 0)
        offsets[(record.kind, record.partition)] = offset + 1
        ingest.process(settings.topic(record.kind), record.partition, offset, record.timestamp_ms, record.value, out)
    existing: dict[int, list[str]] = {}
    for user_id in existing_buyers:
        existing.setdefault(route(user_id, settings.partitions), []).append(user_id)
    messages = [(p, encode_existing(users)) for p, users in sorted(existing.items())] + out.messages()
    partitions = {p: RoutedPartition(p, settings) for p in range(settings.partitions)}
    routed: dict[int, int] = {}
    deltas = Deltas()
    for p, value in messages:
        routed[p] = routed.get(p, -1) + 1
        step = PartitionOutput()
        partitions[p].apply(routed[p], value, step)
        deltas.merge(step.deltas)
        if ledger is not None:
            ledger.add(p, routed[p], step.audit)
    return deltas, routed, out.max_ingest_ms

"""Stage 2 as a plain object; the aggregate agent feeds it batches and ships what it returns.

`RoutedPartition` owns one partition of the routed topic and the users routed to it. Its state is a
pure fold over the routed partition from offset 0, which is what makes recovery exact: rebuild by
replaying with outputs muted up to the last offset whose deltas were already emitted. Replays of
stage 1 (after its own restart) are recognised by (source, offset, index) and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.aggregate import audit
from streams.aggregate.state import Meta, UserCache
from streams.aggregate.user import apply_fields, mark_existing
from streams.contract.dlq import DeadLetter
from streams.contract.events import Kind, Reason
from streams.contract.facts import Deltas, RejectKey, minute_of
from streams.contract.limits import StageConfig
from streams.contract.wire import EVENT_FOLDED, KIND, POSITION, REJECT_FIELDS, REJECT_KIND, item_event


@dataclass
class PartitionOutput:
    """What one routed partition emits for a batch."""

    deltas: Deltas = field(default_factory=Deltas)
    dead: list[DeadLetter] = field(default_factory=list)
    to_offset: int = -1
    max_event_ts: int = 0
    max_ingest_ms: int = 0
    audit: list[list[Any]] = field(default_factory=list)  # identity moves, when auditing (streams/aggregate/audit.py)

    def __bool__(self) -> bool:
        return bool(self.deltas) or bool(self.dead) or bool(self.audit)


class RoutedPartition:
    """Stage 2 for one partition of the routed topic: exact per-user state and the deltas it emits."""

    def __init__(self, partition: int, config: StageConfig, emitted_to: int = -1) -> None:
        self.partition = partition
        self.horizon_ms = config.limits.horizon_ms
        self.lateness_ms = config.limits.lateness_ms
        self.input_partitions = len(config.input_topics) * config.partitions
        self.users = UserCache()  # unbounded until the agent attaches a snapshot (streams/aggregate/state.py)
        # Per input partition: the newest consumer generation seen, and the highest (offset, index).
        self.src_seen: dict[str, tuple[int, int, int]] = {}
        self.emitted_to = emitted_to  # routed offsets up to here already have their output out
        self.next_offset = 0  # the routed offset this state has been folded up to (exclusive)
        self.src_watermark: dict[str, int] = {}  # input partition -> newest stage-1 watermark heard
        self.forget_before: int | None = None  # dedup ids older than this can no longer be matched
        self.audit = config.audit

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
            arrival = doc["ing"]  # a duplicate is counted at its batch's arrival, as stage 1's rejections
            for item in doc["items"]:
                self._apply_item(item, generation, sink, arrival)
            # After the items: a message's watermarks are where stage 1 stood at the END of its
            # batch, while its items passed the gate earlier, against lower watermarks. Heard
            # first, they could drop an id that a copy in this very message still has to match.
            self.hear_watermarks(doc.get("wm", {}))
        if not muted:
            out.to_offset = offset

    def resume(self, users: UserCache, meta: Meta | None) -> int:
        """Take up a snapshot: its users (read back one by one as they return) and, when it holds a
        fold, its bookkeeping. Returns the routed offset the replay starts from."""
        self.users = users
        if meta is None or meta.next_offset == 0:
            return 0
        self.src_seen, self.next_offset = meta.src_seen, meta.next_offset
        self.hear_watermarks(meta.watermarks)
        return meta.next_offset

    def hear_watermarks(self, watermarks: dict[str, int]) -> None:
        for src, mark in watermarks.items():
            if mark > self.src_watermark.get(src, -1):
                self.src_watermark[src] = mark
        # A copy can still arrive from input partition s only with ts >= watermark(s) - lateness;
        # an id more than the horizon below that, for every s, can never match again. Until every
        # input partition has been heard from, a first event anywhere may carry any ts: keep all.
        if len(self.src_watermark) >= self.input_partitions:
            self.forget_before = min(self.src_watermark.values()) - self.lateness_ms - self.horizon_ms

    def _apply_item(self, item: list[Any], generation: int, out: PartitionOutput, arrival_ms: int) -> None:
        src, offset, index = item[POSITION]
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
        if item[KIND] == REJECT_KIND:
            reason, arrived, campaign, channel, topic = item[REJECT_FIELDS]
            out.deltas.reject(RejectKey(topic, reason, campaign, channel, minute_of(arrived)))
            return
        # The item's fields as they are: an `Event` per item was a tenth of stage 2. Only a
        # duplicate, rare, is turned back into one (for the dead letter).
        kind, event_id, ts, user_id, campaign, channel, entry, tier, share_id, order_id, amount = item[EVENT_FOLDED]
        state = self.users.take(user_id)
        if ts > out.max_event_ts:
            out.max_event_ts = ts
        before = audit.holders(state, campaign) if self.audit else None
        if apply_fields(state, kind, event_id, ts, campaign, channel, entry, tier, share_id, order_id, amount,
                        out.deltas, self.horizon_ms, self.forget_before):  # fmt: skip
            ev = item_event(item)
            topic = ev.kind.topic_suffix
            out.deltas.reject(RejectKey(topic, Reason.DUPLICATE, ev.campaign_id, ev.channel, minute_of(arrival_ms)))
            out.dead.append(DeadLetter(ev.to_json(), Reason.DUPLICATE, ev.event_id, f"{src}:{offset}:{index}"))
        elif before is not None:
            if kind == Kind.ORDER:
                out.audit.append(audit.order_row(user_id, order_id, event_id, campaign, channel))
            audit.moves(user_id, campaign, before, audit.holders(state, campaign), out.audit)

"""Stage 1 as a plain object; the ingest agent feeds it batches and ships what it returns.

`Ingest`: input message → elements → contract check → partition gate (future/late) → accepted
events routed by user, rejections routed by source. Its only state is the watermark of each input
partition, a function of that partition's content, so it can always be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streams.contract.dlq import DeadLetter
from streams.contract.events import Event, Kind, Rejection, decode_items
from streams.contract.limits import StageConfig
from streams.contract.wire import (
    TS,
    USER,
    encode_routed,
    event_item,
    item_event,
    reject_item,
    route,
    route_source,
)
from streams.ingest.gate import PartitionGate


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

    def __init__(self, config: StageConfig) -> None:
        self.limits = config.limits
        self.partitions = config.partitions
        self.gates: dict[str, PartitionGate] = {}
        self.kinds = {config.topic(k.topic_suffix): k for k in Kind}
        # topic -> partition -> "topic:partition": formatting it anew was 3% of a one-event message.
        self.srcs: dict[str, dict[int, str]] = {topic: {} for topic in self.kinds}

    def new_gate(self) -> PartitionGate:
        return PartitionGate(self.limits.lateness_ms, self.limits.future_ms)

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
        elements = decode_items(kind, value, src, offset, self.limits.max_value_bytes)
        out.elements += len(elements)
        routed = out.routed
        for index, element in enumerate(elements):
            if isinstance(element, Event):  # well-formed, but in a shape decode_items leaves to parse_event
                element = event_item(src, offset, index, element)
            if isinstance(element, list):
                ts, user_id = element[TS], element[USER]
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
            out.routed.setdefault(dest, []).append(
                reject_item(src, offset, index, element, kind.topic_suffix, timestamp_ms)
            )
            out.dead.append(DeadLetter(element.raw, element.reason, element.detail, f"{src}:{offset}:{index}"))
        out.watermarks[src] = gate.watermark

    def replay(self, topic: str, partition: int, timestamp_ms: int, value: bytes | None) -> None:
        """Advance a gate over a message already judged before a restart (no output kept)."""
        self.process(topic, partition, 0, timestamp_ms, value, IngestOutput())

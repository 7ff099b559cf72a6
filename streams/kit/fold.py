"""Both stages in one process with no broker, in send order: the oracle's twin for tests and benches."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from streams.aggregate.fold import PartitionOutput, RoutedPartition
from streams.config import Settings
from streams.contract.facts import Deltas
from streams.contract.wire import (
    encode_existing,
    route,
)
from streams.ingest.stage import Ingest, IngestOutput
from streams.kit.audit import Ledger

if TYPE_CHECKING:
    from streams.kit.simulate import Record


def fold_in_process(
    records: Iterable[Record], existing_buyers: Iterable[str], settings: Settings, ledger: Ledger | None = None
) -> tuple[Deltas, dict[int, int], int]:
    """Both stages in one process, in send order, as the agents run them but with no broker:
    (the summed deltas, the last routed offset of each partition, the newest input timestamp).
    Imports come first, as `promo users import` before traffic. For tests and the dashboard bench.
    With `settings.audit`, each routed message's identity rows go into `ledger`."""
    ingest, out, offsets = Ingest(settings.stages), IngestOutput(), dict[tuple[str, int], int]()
    for record in records:
        offset = offsets.get((record.kind, record.partition), 0)
        offsets[(record.kind, record.partition)] = offset + 1
        ingest.process(settings.topic(record.kind), record.partition, offset, record.timestamp_ms, record.value, out)
    existing: dict[int, list[str]] = {}
    for user_id in existing_buyers:
        existing.setdefault(route(user_id, settings.partitions), []).append(user_id)
    messages = [(p, encode_existing(users)) for p, users in sorted(existing.items())] + out.messages()
    partitions = {p: RoutedPartition(p, settings.stages) for p in range(settings.partitions)}
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

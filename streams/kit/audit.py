"""Identity audit: which order, and which event holding a person's credit, the numbers moved.

Stage 2's identity rows (streams/aggregate/audit.py, with `PROMO_AUDIT=1`) are checked one by one
against the oracle (`streams/kit/truth.py: identities`), as Flink's SemanticsCheckMapper and
Kafka's transaction tests compare identical sets rather than counts.

Deltas messages are read as the sink reads them: a message counts when its routed offset is past
every earlier message of its partition (`Ledger.add`). Pure: no I/O here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.sink.markers import DeltaGate, Verdict


@dataclass
class Ledger:
    """The net identity moves of every deltas message the sink writes."""

    net: Counter[tuple[str, str, str, str, str, str]] = field(default_factory=Counter)
    gate: DeltaGate = field(default_factory=DeltaGate)  # the sink's rule (streams/sink/markers.py)
    skipped: int = 0  # redeliveries
    fenced: int = 0  # a zombie's batches

    def add(
        self, partition: int, to_offset: int, rows: Iterable[list[Any]], generation: int = 0, fence: bool = False
    ) -> bool:
        """One deltas message, in its partition's order; False when the sink would skip it."""
        verdict = self.gate.judge(partition, to_offset, generation, fence)
        if verdict is not Verdict.WRITE:
            self.skipped += verdict is Verdict.REDELIVERY
            self.fenced += verdict is Verdict.FENCED
            return False
        for kind, user, scope, event_id, campaign, channel, sign in rows:
            self.net[(kind, user, scope, event_id, campaign, channel)] += sign
        return True


@dataclass(frozen=True)
class Identities:
    """Who should hold what, by identity (the oracle's, or the pipeline's as the ledger says)."""

    orders: Counter[tuple[str, str, str, str]]  # (user, order_id, campaign, channel) -> times counted
    participant: Mapping[tuple[str, str], list[tuple[str, str]]]  # (user, campaign) -> [(event_id, channel)]
    buyer: Mapping[tuple[str, str], list[tuple[str, str]]]  # (user, campaign) -> [(order_id, channel)]
    new: Mapping[str, list[tuple[str, str, str]]]  # user -> [(order_id, campaign, channel)]


def identities_of(doc: Mapping[str, Any]) -> Identities:
    """`Identities` from the oracle's plain data (streams/kit/truth.py: identities)."""
    return Identities(Counter(doc["orders"]), doc["participant"], doc["buyer"], doc["new"])


def ledger_identities(ledger: Ledger) -> Identities:
    """What the written deltas credit; a holder list longer than one, or a count off 0/1, is a fault."""
    orders: Counter[tuple[str, str, str, str]] = Counter()
    order_of: dict[tuple[str, str], str] = {}  # (user, event_id) -> order_id
    for (kind, user, scope, event_id, campaign, channel), n in ledger.net.items():
        if kind == "order":
            order_of[(user, event_id)] = scope
            if n:
                orders[(user, scope, campaign, channel)] += n
    participant: dict[tuple[str, str], list[tuple[str, str]]] = {}
    buyer: dict[tuple[str, str], list[tuple[str, str]]] = {}
    new: dict[str, list[tuple[str, str, str]]] = {}
    for (kind, user, scope, event_id, campaign, channel), n in sorted(ledger.net.items()):
        for _ in range(abs(n)):  # a net of 2 (doubled) or -1 (retracted twice) shows as an extra holder
            held = event_id if n > 0 else f"-{event_id}"
            if kind == "participant":
                participant.setdefault((user, scope), []).append((held, channel))
            elif kind == "buyer":
                buyer.setdefault((user, scope), []).append((order_of.get((user, event_id), held), channel))
            elif kind == "new":
                new.setdefault(user, []).append((order_of.get((user, event_id), held), campaign, channel))
    return Identities(orders, participant, buyer, new)


@dataclass
class AuditReport:
    """Identities lost (missing), doubled (counted or held too often) and misattributed (wrong cell
    or wrong holder), with a few examples of each."""

    checked: int = 0
    lost: int = 0
    doubled: int = 0
    misattributed: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.misattributed == 0

    def note(self, what: str) -> None:
        if len(self.examples) < 12:
            self.examples.append(what)


def _compare_holders(
    what: str, want: Mapping[Any, list[Any]], got: Mapping[Any, list[Any]], report: AuditReport
) -> None:
    for key in sorted(want.keys() | got.keys(), key=repr):
        w, g = sorted(want.get(key, [])), sorted(got.get(key, []))
        report.checked += 1
        if w == g:
            continue
        if not g:
            report.lost += len(w)
            report.note(f"{what} {key}: held by {w}, written nowhere")
        elif len(g) > max(len(w), 1) or not w:
            report.doubled += len(g) - len(w)
            report.note(f"{what} {key}: should be {w}, written {g}")
        else:
            report.misattributed += 1
            report.note(f"{what} {key}: should be {w}, written {g}")


def compare(want: Identities, got: Identities) -> AuditReport:
    """Every identity of `want` exactly once in `got`, in the right cell and on the right holder."""
    report = AuditReport()
    by_order_want: dict[tuple[str, str], Counter[tuple[str, str]]] = {}
    by_order_got: dict[tuple[str, str], Counter[tuple[str, str]]] = {}
    for source, target in ((want.orders, by_order_want), (got.orders, by_order_got)):
        for (user, order_id, campaign, channel), n in source.items():
            target.setdefault((user, order_id), Counter())[(campaign, channel)] += n
    for key in sorted(by_order_want.keys() | by_order_got.keys()):
        w, g = by_order_want.get(key, Counter()), by_order_got.get(key, Counter())
        report.checked += 1
        if w == g:
            continue
        nw, ng = sum(w.values()), sum(g.values())
        if nw == ng:
            report.misattributed += 1
        elif ng < nw:
            report.lost += nw - ng
        else:
            report.doubled += ng - nw
        report.note(f"order {key}: should be {dict(w)}, written {dict(g)}")
    _compare_holders("participant", want.participant, got.participant, report)
    _compare_holders("buyer", want.buyer, got.buyer, report)
    _compare_holders("new user", want.new, got.new, report)
    return report

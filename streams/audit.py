"""Identity audit: which order, and which event holding a person's credit, the numbers moved.

Summed cells can hide a lost order behind a doubled one, and a credit moved to the wrong order
behind a right total. With `PROMO_AUDIT=1` stage 2 adds to each deltas message one row per identity
it moved, and the kill loop of `promo chaos` checks them one by one against the oracle
(`streams/truth.py: identities`), as Flink's SemanticsCheckMapper and Kafka's transaction tests
compare identical sets rather than counts.

A row is `[kind, user_id, scope, event_id, campaign_id, channel, sign]`:
- `order`: an accepted order; scope is its order_id; sign +1.
- `participant`, `buyer`: the event holding the person's credit in campaign `scope` moved; -1 for
  the old holder, +1 for the new one.
- `new`: the order holding the person's new-user credit (scope ""); -1 when it moves or the person
  is imported as an existing buyer.

Deltas messages are read as the sink reads them: a message counts when its routed offset is past
every earlier message of its partition (`Ledger.add`). Pure: no I/O here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.fencing import DeltaGate, Verdict
from streams.metrics import Credit, UserState

# (participant credit in the campaign, buyer credit in the campaign, first order, existing buyer)
Holders = tuple[Credit | None, Credit | None, Credit | None, bool]


def holders(state: UserState, campaign: str = "") -> Holders:
    return state.participant.get(campaign), state.buyer.get(campaign), state.first_order, state.existing


def order_row(user_id: str, order_id: str, event_id: str, campaign: str, channel: str) -> list[Any]:
    return ["order", user_id, order_id, event_id, campaign, channel, 1]


def _move(kind: str, user_id: str, scope: str, old: Credit | None, new: Credit | None, out: list[list[Any]]) -> None:
    if old == new:
        return
    if old is not None:
        out.append([kind, user_id, scope, old.event_id, old.key.campaign_id, old.key.channel, -1])
    if new is not None:
        out.append([kind, user_id, scope, new.event_id, new.key.campaign_id, new.key.channel, 1])


def moves(user_id: str, campaign: str, before: Holders, after: Holders, out: list[list[Any]]) -> None:
    """The rows for whatever credits changed hands between `before` and `after` of one event."""
    if campaign:
        _move("participant", user_id, campaign, before[0], after[0], out)
        _move("buyer", user_id, campaign, before[1], after[1], out)
    # The new-user credit is held by the first order of a person who is not an existing buyer.
    _move("new", user_id, "", None if before[3] else before[2], None if after[3] else after[2], out)


@dataclass
class Ledger:
    """The net identity moves of every deltas message the sink writes."""

    net: Counter[tuple[str, str, str, str, str, str]] = field(default_factory=Counter)
    gate: DeltaGate = field(default_factory=DeltaGate)  # the sink's rule (streams/fencing.py)
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
    """`Identities` from the oracle's plain data (streams/truth.py: identities)."""
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

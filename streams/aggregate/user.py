"""Stage 2's per-user fold: exact distinct counts as moves of credit. Pure; unit- and property-tested.

`UserState` + `apply_event` keep, per user, what is needed for exact distinct counts (dedup ids, the
earliest event of each kind per campaign, the earliest order ever) and emit deltas: +1/-1 moves of
credit, so that the sum of all deltas is the same whatever order events arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from streams.contract.events import Event, Kind, Reason
from streams.contract.facts import (
    COUNTERS,
    I_BUYERS,
    I_GMV,
    I_INTERACTIONS,
    I_NEW,
    I_NEW_SHARE,
    I_ORDERS,
    I_PARTICIPANTS,
    I_SHARES,
    MINUTE_MS,
    Deltas,
    FactKey,
)

# NamedTuple's generated __new__ is Python code: two of them per event were a tenth of stage 2.
# tuple.__new__ builds the same instances in C.
_new_tuple = tuple.__new__
_SHARE, _ORDER = int(Kind.SHARE), int(Kind.ORDER)


class Credit(NamedTuple):
    """The event that holds a distinct-person credit, with the dimensions the credit sits under."""

    ts: int
    event_id: str
    key: FactKey
    via_share: bool

    def earlier_than(self, other: Credit) -> bool:
        return (self.ts, self.event_id) < (other.ts, other.event_id)


@dataclass(slots=True)
class UserState:
    """All a user's history that the exact numbers need; small, and the same whatever the order."""

    existing: bool = False
    max_ts: int = 0
    event_ids: dict[str, int] = field(default_factory=dict)  # event_id -> ts, for dedup
    order_ids: dict[str, int] = field(default_factory=dict)  # order_id -> ts, for dedup
    participant: dict[str, Credit] = field(default_factory=dict)  # campaign -> earliest click/share
    buyer: dict[str, Credit] = field(default_factory=dict)  # campaign -> earliest order
    first_order: Credit | None = None  # earliest order ever, any campaign


def _prune(seen: dict[str, int], keep_from: int) -> None:
    """Forget ids far older than anything a duplicate could still be compared with."""
    for ident in [i for i, ts in seen.items() if ts < keep_from]:
        del seen[ident]


def _move_credit(held: Credit | None, new: Credit, out: Deltas, column: int, share_column: int | None = None) -> Credit:
    """Give the credit to the earlier of `held` and `new`, emitting the -1/+1 that moves it."""
    if held is not None and not new.earlier_than(held):
        return held
    if held is not None:
        out.add(held.key, column, -1)
        if share_column is not None and held.via_share:
            out.add(held.key, share_column, -1)
    out.add(new.key, column, 1)
    if share_column is not None and new.via_share:
        out.add(new.key, share_column, 1)
    return new


def apply_event(
    state: UserState, ev: Event, out: Deltas, *, horizon_ms: int, forget_before: int | None = None
) -> str | None:
    """Apply one gate-passed event of this user; returns `Reason.DUPLICATE` or None when counted.

    forget_before: dedup ids with an older ts may be dropped, because no copy that could still
    arrive is within the horizon of them (the caller derives it from every input partition's
    watermark); None keeps them all.
    """
    duplicate = apply_fields(
        state, int(ev.kind), ev.event_id, ev.ts, ev.campaign_id, ev.channel, ev.entry, ev.city_tier, ev.share_id,
        ev.order_id, ev.amount_fen, out, horizon_ms, forget_before,
    )  # fmt: skip
    return Reason.DUPLICATE if duplicate else None


def apply_fields(
    state: UserState,
    kind: int,
    event_id: str,
    ts: int,
    campaign_id: str,
    channel: str,
    entry: str,
    city_tier: int,
    share_id: str,
    order_id: str,
    amount_fen: int,
    out: Deltas,
    horizon_ms: int,
    forget_before: int | None,
) -> bool:
    """`apply_event` on the event's fields, as stage 2 has them (no `Event` built); True: a duplicate."""
    event_ids = state.event_ids
    prev = event_ids.get(event_id)
    if prev is not None and -horizon_ms <= ts - prev <= horizon_ms:
        return True
    if kind == _ORDER:
        prev = state.order_ids.get(order_id)
        if prev is not None and -horizon_ms <= ts - prev <= horizon_ms:
            return True
    event_ids[event_id] = ts
    if ts > state.max_ts:
        state.max_ts = ts
    if forget_before is not None and len(event_ids) > 64 and len(event_ids) % 32 == 0:
        # Every 32nd id past 64, not every event: a scan per event made heavy users quadratic.
        # Forgetting later is always safe; only forgetting too early is not.
        _prune(event_ids, forget_before)
        _prune(state.order_ids, forget_before)

    key: FactKey = _new_tuple(FactKey, (campaign_id, channel, entry, city_tier, ts - ts % MINUTE_MS))
    credit: Credit = _new_tuple(Credit, (ts, event_id, key, bool(share_id)))
    facts = out.facts
    row = facts.get(key)
    if row is None:
        row = facts[key] = [0] * len(COUNTERS)
    if kind == _ORDER:
        state.order_ids[order_id] = ts
        row[I_ORDERS] += 1
        row[I_GMV] += amount_fen
        state.buyer[campaign_id] = _move_credit(state.buyer.get(campaign_id), credit, out, I_BUYERS)
        if state.existing:
            # Existing buyers are never new, but we still track the first order so that the
            # state is the same whether the import came before or after it.
            if state.first_order is None or credit.earlier_than(state.first_order):
                state.first_order = credit
        else:
            state.first_order = _move_credit(state.first_order, credit, out, I_NEW, I_NEW_SHARE)
        return False

    row[I_INTERACTIONS] += 1
    if kind == _SHARE:
        row[I_SHARES] += 1
    participant = state.participant
    held = participant.get(campaign_id)
    if held is None:  # the common case, a first click in this campaign: no credit to move
        participant[campaign_id] = credit
        row[I_PARTICIPANTS] += 1
    else:
        participant[campaign_id] = _move_credit(held, credit, out, I_PARTICIPANTS)
    return False


def mark_existing(state: UserState, out: Deltas) -> None:
    """The user is an imported existing buyer: take back any new-user credit they hold."""
    if state.existing:
        return
    state.existing = True
    held = state.first_order
    if held is not None:
        out.add(held.key, I_NEW, -1)
        if held.via_share:
            out.add(held.key, I_NEW_SHARE, -1)

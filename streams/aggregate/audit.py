"""Identity rows: with `PROMO_AUDIT=1` stage 2 adds to each deltas message one row per identity it moved.

Summed cells can hide a lost order behind a doubled one, and a credit moved to the wrong order
behind a right total; the kill loop of `promo chaos` checks these rows one by one against the
oracle (streams/kit/audit.py).

A row is `[kind, user_id, scope, event_id, campaign_id, channel, sign]`:
- `order`: an accepted order; scope is its order_id; sign +1.
- `participant`, `buyer`: the event holding the person's credit in campaign `scope` moved; -1 for
  the old holder, +1 for the new one.
- `new`: the order holding the person's new-user credit (scope ""); -1 when it moves or the person
  is imported as an existing buyer.
"""

from __future__ import annotations

from typing import Any

from streams.aggregate.user import Credit, UserState

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

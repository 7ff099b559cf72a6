"""The job every peer does, as plain functions over JSON-able values, so that any framework's state
store can hold it and the peers differ only in the framework around it.

The logic itself is the contract's, and it is the pipeline's own pure code: `events.decode_value`
(decode and validate), `metrics.PartitionGate` (future and late, per input partition) and
`metrics.apply_event` / `mark_existing` (dedup, and the earliest-credit moves behind participants,
buyers and new users). Reusing it keeps the comparison about the frameworks, not about two
implementations of the rules. A user's state is kept as the JSON of the pipeline's own snapshot
record (`streams.aggregate.state`). What is here is only the glue: how a routed event looks as JSON,
and how a batch of deltas becomes `campaign_totals` rows.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final

import orjson

from streams.aggregate.state import encode_user, user_from_doc
from streams.aggregate.user import UserState
from streams.contract import events
from streams.contract.events import ROW_FOLDED, ROW_USER, Event, Kind, Rejection, decode_value
from streams.contract.facts import COUNTERS, Deltas
from streams.contract.limits import Limits
from streams.ingest.gate import PartitionGate

EXISTING_KIND: Final = -1  # the kind slot of a routed row that marks an imported existing buyer
WIDTH: Final = len(COUNTERS)


# -- stage 1: one input message through the contract and its partition's gate --------------------


def admitted(
    kind: Kind,
    value: bytes | None,
    gate: PartitionGate,
    clock_ms: int,
    limits: Limits,
    rejected: MutableMapping[str, int],
) -> tuple[list[Event], int]:
    """The message's events that pass the contract and the gate, and how many elements it held;
    every rejection is counted by reason into `rejected`."""
    events: list[Event] = []
    elements = 0
    for item in decode_value(kind, value, max_bytes=limits.max_value_bytes):
        elements += 1
        reason = item.reason if isinstance(item, Rejection) else gate.admit(item.ts, clock_ms)
        if reason is not None:
            rejected[reason] = rejected.get(reason, 0) + 1
        elif isinstance(item, Event):
            events.append(item)
    return events, elements


# -- a gate-passed event on its way to the user's owner (a repartition topic's value) -------------


def event_row(ev: Event) -> list[Any]:
    """The contract's event row (`events.ROW_FIELDS`), cut after the fields the fold reads: action
    and target_id do not reach the numbers, so the peers do not ship them."""
    return events.event_row(ev)[:ROW_FOLDED]


def existing_row(user_id: str) -> list[Any]:
    """An imported existing buyer: a row with only its kind (EXISTING_KIND) and user slots filled."""
    return [EXISTING_KIND, "", 0, user_id]


def row_user(row: list[Any]) -> str:
    user: str = row[ROW_USER]
    return user


row_event = events.row_event


def existing_users(value: bytes | None) -> list[str]:
    """The user ids of one import message (`wire.encode_existing`); anything else is no import."""
    try:
        doc = orjson.loads(value or b"null")
    except orjson.JSONDecodeError:
        return []
    users = doc.get("existing") if isinstance(doc, dict) else None
    return [u for u in users if isinstance(u, str)] if isinstance(users, list) else []


# -- a user's state as JSON: the pipeline's own snapshot codec --------------------------------------


def state_doc(state: UserState) -> list[Any]:
    """`UserState` as the JSON value of its snapshot record (`streams.aggregate.state.encode_user`), so
    a framework's JSON state store holds what the pipeline's snapshot holds. Encoding and parsing
    again are two C calls: cheaper than copying the credits into lists field by field in Python."""
    doc: list[Any] = orjson.loads(encode_user(state))
    return doc


def user_state(doc: list[Any] | None) -> UserState:
    return UserState() if doc is None else user_from_doc(doc)


# -- deltas as campaign_totals rows ----------------------------------------------------------------


def delta_rows(deltas: Deltas) -> list[list[Any]]:
    """[campaign_id, channel, *COUNTERS] per (campaign, channel), leaving out rows that cancel out."""
    return [[campaign, channel, *row] for (campaign, channel), row in deltas.totals().items() if any(row)]


def sum_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows of equal (campaign, channel) added up, so one flush inserts each pair once."""
    acc: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        into = acc.setdefault((row[0], row[1]), [0] * WIDTH)
        for i in range(WIDTH):
            into[i] += row[2 + i]
    return [[campaign, channel, *row] for (campaign, channel), row in acc.items() if any(row)]

"""Local snapshots of stage-2 state, so a restart replays the routed log from the snapshot, not from 0.

One RocksDB (rocksdict, the engine under Faust's `rocksdb://` store) per routed partition, under
`<data dir>/state/<app id>/routed-<p>`. After a batch's deltas are acknowledged, the users it
touched and the partition's bookkeeping (next routed offset, per-source positions) go in with one
atomic write batch: the snapshot is always the exact state after some routed offset k.

Recovery loads it and replays from k. That is exact even when k is past the offset consumption
resumes at, because folding a routed message twice is a no-op: its items are recognised as replays
by source position, imports are idempotent, and output up to the last emitted offset is muted.
A snapshot is only a cache: when it is missing, locked by another process, or from another broker
log (the log is shorter than its offset), recovery falls back to replaying from 0.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from rocksdict import Options, Rdict, WriteBatch

from streams.metrics import Credit, FactKey, UserState

log = logging.getLogger(__name__)

META = b"meta"
USER = b"u:"


def _credit(c: Credit | None) -> list[Any] | None:
    return None if c is None else [c.ts, c.event_id, list(c.key), c.via_share]


def _uncredit(raw: list[Any] | None) -> Credit | None:
    return None if raw is None else Credit(raw[0], raw[1], FactKey(*raw[2]), raw[3])


def encode_user(state: UserState) -> bytes:
    return orjson.dumps([
        state.existing, state.max_ts, state.event_ids, state.order_ids,
        {k: _credit(v) for k, v in state.participant.items()},
        {k: _credit(v) for k, v in state.buyer.items()},
        _credit(state.first_order),
    ])  # fmt: skip


def decode_user(value: bytes) -> UserState:
    existing, max_ts, event_ids, order_ids, participant, buyer, first = orjson.loads(value)
    return UserState(
        existing=existing, max_ts=max_ts, event_ids=event_ids, order_ids=order_ids,
        participant={k: c for k, v in participant.items() if (c := _uncredit(v)) is not None},
        buyer={k: c for k, v in buyer.items() if (c := _uncredit(v)) is not None},
        first_order=_uncredit(first),
    )  # fmt: skip


class Snapshot:
    """The snapshot of one routed partition. Open with `open()`; None when it cannot be had."""

    def __init__(self, db: Rdict, path: Path) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, root: Path, partition: int) -> Snapshot | None:
        path = root / f"routed-{partition}"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return cls(Rdict(str(path), options=Options(raw_mode=True)), path)
        except Exception as exc:  # locked by another process (a zombie), or damaged: replay instead
            log.warning("state snapshot %s unavailable (%s); replaying from offset 0", path, exc)
            return None

    def load(self) -> tuple[int, dict[str, tuple[int, int, int]], dict[str, UserState], int | None, dict[str, int]]:
        """(next routed offset, source positions, users, log identity, source watermarks); offset 0 when empty."""
        meta = self.db.get(META)
        if meta is None:
            return 0, {}, {}, None, {}
        doc = orjson.loads(meta)
        src_seen = {src: (g, o, i) for src, (g, o, i) in doc["src_seen"].items()}
        users: dict[str, UserState] = {}
        for key, value in self.db.items(from_key=USER):
            # raw_mode: keys and values are bytes (the stubs allow any stored type).
            assert isinstance(key, bytes) and isinstance(value, bytes)
            if not key.startswith(USER):
                break
            users[key[len(USER) :].decode()] = decode_user(value)
        return int(doc["next"]), src_seen, users, doc.get("log"), doc.get("wm", {})

    def save(
        self,
        next_offset: int,
        src_seen: dict[str, tuple[int, int, int]],
        users: dict[str, UserState],
        dirty: set[str],
        log_identity: int,
        watermarks: dict[str, int] | None = None,
    ) -> None:
        """`log_identity` (crc32 of the partition's first record) ties the snapshot to one log."""
        batch = WriteBatch(raw_mode=True)
        for user_id in dirty:
            batch.put(USER + user_id.encode(), encode_user(users[user_id]))
        meta = {"next": next_offset, "src_seen": src_seen, "log": log_identity, "wm": watermarks or {}}
        batch.put(META, orjson.dumps(meta))
        self.db.write(batch)

    def clear(self) -> None:
        self.db.close()
        Rdict.destroy(str(self.path))
        self.db = Rdict(str(self.path), options=Options(raw_mode=True))

    def close(self) -> None:
        self.db.close()

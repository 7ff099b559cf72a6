"""`promo users import`: existing buyers, sent to the pipeline before traffic.

Imports go straight to the routed topic, to the partition that owns each user, because the routed
log is what per-user state is rebuilt from: an import is then applied in the same order on every
replay, whether it came before or after the user's orders.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from streams.config import Settings
from streams.contract.ids import check_id
from streams.contract.topics import Topic
from streams.contract.wire import encode_existing, route
from streams.errors import BrokerError

IMPORT_CHUNK = 5000


async def _producer(settings: Settings, request_timeout_s: float = 30.0) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=int(request_timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(producer.start(), 30)
    except (KafkaConnectionError, TimeoutError, OSError) as exc:
        await producer.stop()
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {exc}") from exc
    return producer


def group_by_partition(user_ids: Iterable[str], partitions: int) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for user_id in user_ids:
        groups[route(user_id, partitions)].append(user_id)
    return groups


def existing_messages(user_ids: Sequence[str], partitions: int) -> list[tuple[int, bytes]]:
    """The import messages for `user_ids`: (partition that owns the users, value), in chunks."""
    messages = []
    for partition, users in sorted(group_by_partition(user_ids, partitions).items()):
        for start in range(0, len(users), IMPORT_CHUNK):
            messages.append((partition, encode_existing(users[start : start + IMPORT_CHUNK])))
    return messages


async def import_existing(settings: Settings, user_ids: Sequence[str], *, topic: str | None = None) -> int:
    """Mark users as existing buyers; returns how many were sent. `topic` is the routed topic unless
    given (the bench's peers read imports from a topic of their own)."""
    producer = await _producer(settings)
    topic = topic or settings.topic(Topic.ROUTED)
    try:
        pending = []
        for partition, value in existing_messages(user_ids, settings.partitions):
            pending.append(await producer.send(topic, value, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(user_ids)


# A first line naming the column, as spreadsheets export it: skipped and counted, not imported.
HEADER_NAMES = frozenset({"user_id", "userid", "user", "uid", "id", "用户id", "用户"})
SEPARATORS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class Rejected:
    line: int  # 1-based
    text: str
    reason: str


@dataclass
class UserFile:
    """What a users file holds: the ids to import, a skipped header, and every line refused."""

    users: list[str] = field(default_factory=list)
    header: str | None = None
    rejected: list[Rejected] = field(default_factory=list)
    trimmed: list[int] = field(default_factory=list)  # lines whose id had spaces around it (taken off)


def check_user_id(user: str) -> str | None:
    """Why `user` cannot be a user_id from a file, or None: an id as any file line may hold it
    (contract.ids), and no column separator (a CSV row; imported, it would make an existing buyer
    count as a new one)."""
    for sep in SEPARATORS:
        if sep in user:
            return f"contains {sep!r}: one user_id a line (cut the column out of a CSV first)"
    return check_id(user, "user_id")


def read_user_file(text: str) -> UserFile:
    """One user_id a line; blank lines and `#` comments skipped; a header line skipped and counted;
    every other line either imported or rejected with its number and reason."""
    out = UserFile()
    first = True
    for number, line in enumerate(text.splitlines(), 1):
        user = line.strip().removeprefix("\ufeff")  # a byte-order mark from a spreadsheet export
        if not user or user.startswith("#"):
            continue
        if first and user.split(",")[0].strip().strip('"').lower() in HEADER_NAMES:
            out.header = user
            first = False
            continue
        first = False
        reason = check_user_id(user)
        if reason is None:
            out.users.append(user)
            if user != line.removeprefix("\ufeff"):  # padding from a spreadsheet, as a rule: said, not silent
                out.trimmed.append(number)
        else:
            out.rejected.append(Rejected(number, line[:80], reason))
    return out

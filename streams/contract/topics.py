"""The one place that names the pipeline's topics (each gets `PROMO_TOPIC_PREFIX`, or for the inputs
`PROMO_INPUT_PREFIX`, in front: `Settings.topic`). Imports nothing of ours."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    CLICKS = "clicks"
    SHARES = "shares"
    ORDERS = "orders"
    ROUTED = "routed"  # stage 1 -> stage 2, keyed by user (streams/contract/wire.py)
    DELTAS = "deltas"  # stage 2 -> the sink
    DLQ = "dlq"  # dead letters, with their reason
    CAMPAIGNS = "campaigns"  # `promo campaigns import`: names and schedules, keyed by campaign_id
    HEARTBEATS = "heartbeats"  # every worker's freshness per partition, a record a second (the drop detector)


# The event inputs, in the order of `events.Kind` (CLICK, SHARE, ORDER).
INPUTS: tuple[Topic, ...] = (Topic.CLICKS, Topic.SHARES, Topic.ORDERS)

"""streams/worker/transport.py leans on Faust and aiokafka internals (issue 15): each one it overrides, calls
or reads is pinned here, so a faust-streaming or aiokafka upgrade that moves one fails in this file
with a message that names it, rather than as a hung or silently wrong worker."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiokafka
import faust
import mode
import pytest
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.worker.transport import READ_BACK_MAX, BatchConsumer, BatchTransport, FreshConsumerThread, PromoApp


def params(fn: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(fn).parameters)


# (owner, method, the parameters transport.py calls or overrides it with, must it be a coroutine)
METHODS = [
    (faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", ["self", "transport"], False),
    (faust_aiokafka.Consumer, "_new_consumer_thread", ["self"], False),
    (faust_consumer.Consumer, "_drain_messages", ["self", "fetcher"], True),
    (faust_consumer.Consumer, "_wait_next_records", ["self", "timeout"], True),
    (faust_consumer.Consumer, "on_partitions_assigned", ["self", "assigned", "generation_id"], True),
    (faust_consumer.Consumer, "on_partitions_revoked", ["self", "revoked"], True),
    (faust_consumer.Consumer, "commit", ["self", "topics", "start_new_transaction"], True),
    (faust.App, "_new_transport", ["self"], False),
    # The read-back of records skipped after a rebalance (BatchConsumer._next_offset, _swept):
    (aiokafka.AIOKafkaConsumer, "committed", ["self", "partition"], True),
    (faust_aiokafka.AIOKafkaConsumerThread, "call_thread", ["self", "fun", "args", "kwargs"], True),
    (faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer", ["self"], False),
    (faust_consumer.ThreadDelegateConsumer, "highwater", ["self", "tp"], False),
]


@pytest.mark.parametrize(("owner", "name", "expected", "coroutine"), METHODS, ids=lambda v: getattr(v, "__name__", v))
def test_each_faust_method_transport_relies_on_keeps_its_shape(
    owner: type, name: str, expected: list[str], coroutine: bool
) -> None:
    fn = getattr(owner, name, None)
    assert fn is not None, f"{owner.__qualname__}.{name} is gone: streams/worker/transport.py overrides or calls it"
    assert params(fn) == expected, f"{owner.__qualname__}.{name} now takes {params(fn)}; transport.py uses {expected}"
    assert inspect.iscoroutinefunction(fn) == coroutine, f"{owner.__qualname__}.{name}: async-ness changed"


# Attributes read or written, and where they are set: (class whose source sets it, attribute).
ASSIGNED_IN_INIT = [
    (faust_consumer.Consumer, "_committed_offset"),  # read by _ack_through
    (faust_consumer.Consumer, "_acked"),  # extended by _ack_through, as Consumer.ack does
    (faust_consumer.Consumer, "_commit_every"),
    (faust_consumer.Consumer, "_buffered_partitions"),
    (aiokafka.AIOKafkaConsumer, "_fetch_max_wait_ms"),  # set by FreshConsumerThread before start
    (mode.Service, "_stopped"),  # the consumer's and the fetcher's stop events
    (mode.Service, "diag"),
]


@pytest.mark.parametrize(("owner", "attribute"), ASSIGNED_IN_INIT, ids=lambda v: getattr(v, "__name__", v))
def test_each_private_attribute_transport_reads_is_still_set_where_it_was(owner: type, attribute: str) -> None:
    source = inspect.getsource(owner.__init__)  # type: ignore[misc]
    assert f"self.{attribute}" in source, f"{owner.__qualname__}.__init__ no longer sets {attribute}"


@pytest.mark.parametrize(
    "attribute", ["_n_acked", "flow_active", "should_stop", "consumer_stopped_errors", "highwater"]
)
def test_consumer_attributes_transport_reads_exist(attribute: str) -> None:
    assert hasattr(faust_consumer.Consumer, attribute), f"faust Consumer.{attribute} is gone"


def test_the_app_still_reports_the_consumer_generation() -> None:
    assert hasattr(faust.App, "consumer_generation_id"), "faust App.consumer_generation_id is gone (fencing uses it)"


def test_our_classes_are_wired_into_faust_as_before() -> None:
    assert BatchTransport.Consumer is BatchConsumer
    assert issubclass(BatchConsumer, faust_aiokafka.Consumer)
    assert issubclass(FreshConsumerThread, faust_aiokafka.AIOKafkaConsumerThread)
    assert issubclass(PromoApp, faust.App)
    # a Faust commit that fails returns False (the fencing checkpoints are confirmed only on True)
    source = inspect.getsource(faust_aiokafka.AIOKafkaConsumerThread._commit)
    assert "except CommitFailedError" in source and "return False" in source, "a failed commit no longer returns False"


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def _sweeper(highwater: int, holes: bool = False) -> tuple[Any, list[tuple[int, int]]]:
    """A stand-in for BatchConsumer with one partition due a sweep, handing out read-backs."""
    calls: list[tuple[int, int]] = []
    tp = aiokafka.TopicPartition("promo.orders", 0)

    async def next_offset(_: Any) -> int:
        return 100

    async def read_back(_: Any, start: int, stop: int, why: str) -> list[_Record]:
        calls.append((start, stop))
        if holes and stop - start <= 10_000:
            return []  # nothing in the first stretch: a compacted hole
        return [_Record(o) for o in range(start, stop)]

    fake = SimpleNamespace(_check={tp: 0.0}, _quiet={tp: 4}, _recheck=set(), highwater=lambda _: highwater,
                           _next_offset=next_offset, _read_back=read_back)  # fmt: skip
    return fake, calls


def test_a_sweep_reads_back_at_most_a_fetchs_worth_and_keeps_the_partition_checked() -> None:
    fake, calls = _sweeper(highwater=100 + 25_000)
    found = asyncio.run(BatchConsumer._swept(fake, None, {}))
    ((tp, records),) = found.items()
    assert calls == [(100, 100 + READ_BACK_MAX)] and len(records) == READ_BACK_MAX
    assert tp in fake._recheck  # the rest comes in later sweeps or batches


def test_a_sweep_over_a_hole_reads_on_to_the_high_watermark() -> None:
    fake, calls = _sweeper(highwater=100 + 25_000, holes=True)
    found = asyncio.run(BatchConsumer._swept(fake, None, {}))
    assert calls == [(100, 100 + READ_BACK_MAX), (100, 100 + 25_000)]
    assert len(next(iter(found.values()))) == 25_000 and not fake._recheck


def test_faust_s_stream_livelock_check_is_off_for_the_batch_transport(caplog: pytest.LogCaptureFixture) -> None:
    """Faust's check reads its Stream's inbound times, which the batch transport never sets: it
    logged false ERRORs for every partition after 5 min of steady traffic. The stall watch judges."""
    consumer = BatchConsumer.__new__(BatchConsumer)  # no broker: the check must not need one
    with caplog.at_level(logging.DEBUG):
        assert consumer.verify_event_path(1e9, aiokafka.TopicPartition("promo.clicks", 0)) is None
    assert caplog.records == []

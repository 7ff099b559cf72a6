"""The bench's peers on the real broker and the real ClickHouse engine: their totals equal the oracle's.

Each peer is run as the bench runs it (`run_peer`: its own process, its own chdb store) on a small
simulated stream in both shapes, one event per message and collector batches, unkeyed and keyed,
with duplicates, late and malformed elements and imported existing buyers. No timing is asserted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streams.kafka import ensure_topics
from streams.kit.broker import EmbeddedBroker
from streams.kit.harness import Pipeline
from streams.kit.producer import send_records
from streams.kit.simulate import Record, SimConfig, generate
from streams.kit.truth import compute_truth
from streams.lab.peers import KINDS, run_peer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("batch_rate", [0.0, 1.0], ids=["single", "batched"])
@pytest.mark.parametrize("kind", KINDS)
def test_peer_totals_equal_the_oracle(broker: EmbeddedBroker, tmp_path: Path, kind: str, batch_rate: float) -> None:
    env = Pipeline(broker.url, tmp_path)
    settings = env.settings()
    sim = generate(SimConfig(events=3000, seed=5, partitions=settings.partitions, batch_rate=batch_rate,
                             duplicate_rate=0.02, late_rate=0.01, malformed_rate=0.01))  # fmt: skip

    async def produce() -> list[Record]:
        await ensure_topics(settings)
        return await send_records(settings, sim.records, paced=False)

    sent = asyncio.run(produce())
    truth = compute_truth(sent, sim.existing_buyers)
    # The stream exercises what the totals depend on; otherwise this test could not fail.
    assert truth.rejected.get("duplicate", 0) > 0 and truth.rejected.get("late", 0) > 0
    assert any(row["new_users"] for row in truth.totals) and sim.existing_buyers

    result = run_peer(kind, settings.bootstrap, env.prefix, settings.partitions, tmp_path / kind,
                      sim.existing_buyers, len(sent), truth.totals, timeout_s=120)  # fmt: skip
    assert result.events == truth.accepted + sum(truth.rejected.values())
    assert (result.accepted, result.rejected) == (truth.accepted, truth.rejected)
    assert result.exact, (tmp_path / kind / "peer.log").read_text()[-4000:]

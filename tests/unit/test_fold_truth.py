"""Both stages in-process, no broker: their totals and rejection counts are the oracle's, exactly.

The oracle (streams/kit/truth.py) is written from the contract alone; the fold is the code the agents
run (stage 1's fast decoder, stage 2's field-level fold). Realistic simulated streams in both
message shapes, with duplicates, late and out-of-order events, malformed input and imports.
"""

from __future__ import annotations

import pytest

from streams.config import Settings
from streams.contract.facts import COUNTERS
from streams.kit.fold import fold_in_process
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth
from tests.helpers import rejected_by_reason


@pytest.mark.parametrize(
    ("seed", "batch_rate", "scenario"),
    [(1, 0.0, "double11"), (2, 0.2, "double11"), (3, 1.0, "double11"), (4, 0.5, "618"), (5, 0.0, "double11"),
     (6, 1.0, "618")],
)  # fmt: skip
def test_the_fold_equals_the_oracle(seed: int, batch_rate: float, scenario: str) -> None:
    sim = generate(SimConfig(scenario=scenario, events=8000, seed=seed, partitions=4, batch_rate=batch_rate,
                             duplicate_rate=0.03, malformed_rate=0.02, late_rate=0.01))  # fmt: skip
    deltas, _, _ = fold_in_process(sim.records, sim.existing_buyers, Settings(partitions=4))
    truth = compute_truth(sim.records, sim.existing_buyers)
    got = [
        {"campaign_id": campaign, "channel": channel, **dict(zip(COUNTERS, row, strict=True))}
        for (campaign, channel), row in sorted(deltas.totals().items())
        if any(row)
    ]
    assert got == truth.totals
    assert dict(sorted(rejected_by_reason(deltas).items())) == truth.rejected

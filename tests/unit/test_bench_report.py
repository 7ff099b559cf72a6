"""The bench report's pure parts: the targets it prints and the cores 40% of the ceiling would need."""

from __future__ import annotations

import os

import pytest

from streams.lab.bench import Freshness, Report, Throughput, cores_needed


def _row(
    system: str, events_s: float, ratio: float, cpu: float | None = None, broker: float | None = None
) -> Throughput:
    return Throughput("single", system, 1_000_000, 1_000_000, events_s, ratio, 1_000_000 / events_s,
                      cpu_s_per_million=cpu, broker_cpu_s_per_million=broker, exact=True)  # fmt: skip


@pytest.mark.parametrize(
    ("ceiling_events_s", "cpu", "broker", "expected"),
    [
        (300_000, 25.0, 5.0, (30.0, 3.6)),  # 120,000 events/s at 30 us each
        (100_000, 10.0, 0.0, (10.0, 0.4)),
        (1_000_000, 2.0, 0.5, (2.5, 1.0)),
    ],
)
def test_cores_needed_is_the_target_rate_times_the_cpu_per_event(
    ceiling_events_s: float, cpu: float, broker: float, expected: tuple[float, float]
) -> None:
    ceiling = _row("ceiling (aiokafka read+decode)", ceiling_events_s, 1.0)
    us, cores = cores_needed(ceiling, _row("pipeline x1", 30_000, 0.1, cpu, broker))  # type: ignore[misc]
    assert (us, cores) == pytest.approx(expected)


def test_cores_needed_is_none_without_the_figures() -> None:
    ceiling = _row("ceiling (aiokafka read+decode)", 300_000, 1.0)
    assert cores_needed(None, _row("pipeline x1", 30_000, 0.1, 25.0, 5.0)) is None
    assert cores_needed(ceiling, _row("pipeline x1", 30_000, 0.1, 25.0, None)) is None


def test_targets_take_the_best_pipeline_and_say_what_the_ratio_would_cost() -> None:
    report = Report(
        throughput=[
            _row("ceiling (aiokafka read+decode)", 300_000, 1.0, 3.0, 1.0),
            _row("pipeline x1", 30_000, 0.1, 25.0, 5.0),
            _row("pipeline x2", 45_000, 0.15, 26.0, 5.0),
            _row("quixstreams", 10_000, 0.033),
        ],
        freshness=[
            Freshness("single", 0.5, 15_000, 200, 300.0, 1_900.0, 2_100.0),
            Freshness("single", 0.8, 24_000, 200, 500.0, 2_500.0, 2_600.0),
        ],
    )
    targets = report.targets()
    assert [met for _, met in targets] == [False, True, True, True]
    ratio = targets[0][0]
    assert ratio.startswith("single: pipeline x2 at 15% of the ceiling (target 40%)")
    cost = "at 30.0 CPU us an event (worker 25.0, broker 5.0) 40% of the ceiling needs 3.6 cores"
    assert ratio.endswith(f"{cost}, this machine has {os.cpu_count()}")
    assert targets[1][0] == "single: 4.50x the quixstreams peer (target 1.5x)"
    assert "p99 1,900 ms at 50% load" in targets[3][0]

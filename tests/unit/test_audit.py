"""The identity audit: the fold's identity rows equal the oracle's identities, and the comparison
names a lost, doubled or misattributed identity that summed cells could hide."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter

import pytest

from streams.config import Settings
from streams.kit.audit import Identities, Ledger, compare, identities_of, ledger_identities
from streams.kit.fold import fold_in_process
from streams.kit.simulate import SimConfig, generate
from streams.kit.truth import compute_truth, identities
from streams.lab.crash import CrashPoints, parse
from streams.lab.hostile import order_resends


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fold_credits_every_identity_as_the_oracle_does(seed: int) -> None:
    sim = generate(SimConfig(events=4000, duration_s=10, seed=seed, partitions=4))
    records = order_resends(sim.records, random.Random(seed), rate=0.3)
    assert len(records) > len(sim.records)  # the stream carries order_id-only copies
    ledger = Ledger()
    deltas, _, _ = fold_in_process(records, sim.existing_buyers, Settings(partitions=4, audit=True), ledger)
    want = identities_of(identities(records, sim.existing_buyers))
    report = compare(want, ledger_identities(ledger))
    assert report.exact, report.examples
    assert report.checked > 1000
    # and the rows agree with the numbers: one order row per counted order
    truth = compute_truth(records, sim.existing_buyers)
    assert sum(ledger_identities(ledger).orders.values()) == sum(int(r["orders"]) for r in truth.totals)
    assert deltas


def test_without_audit_the_deltas_carry_no_identity_rows() -> None:
    sim = generate(SimConfig(events=500, duration_s=5, seed=4, partitions=4))
    ledger = Ledger()
    fold_in_process(sim.records, sim.existing_buyers, Settings(partitions=4), ledger)
    assert not ledger.net


def test_the_ledger_skips_what_the_sink_skips() -> None:
    ledger = Ledger()
    row = ["order", "u", "o1", "e1", "c", "wechat", 1]
    assert ledger.add(0, 5, [row])
    assert not ledger.add(0, 5, [row])  # a redelivery
    assert not ledger.add(0, 3, [row])  # an older batch re-emitted
    assert ledger.add(1, 3, [row])  # another partition has its own marker
    assert ledger.net[("order", "u", "o1", "e1", "c", "wechat")] == 2
    assert ledger.skipped == 2


def _ids(**kw: object) -> Identities:
    base: dict[str, object] = {
        "orders": Counter({("u", "o1", "c", "wechat"): 1, ("v", "o2", "c", "app"): 1}),
        "participant": {},
        "buyer": {("u", "c"): [("o1", "wechat")]},
        "new": {"u": [("o1", "c", "wechat")]},
    }
    base.update(kw)
    return Identities(**base)  # type: ignore[arg-type]  # test data, shapes as above


@pytest.mark.parametrize(
    ("got", "lost", "doubled", "misattributed"),
    [
        (_ids(), 0, 0, 0),
        (_ids(orders=Counter({("u", "o1", "c", "wechat"): 1})), 1, 0, 0),  # o2 lost, sums would show it
        # o2 lost and o3 doubled in the same cell: the sums agree, the identities do not
        (_ids(orders=Counter({("u", "o1", "c", "wechat"): 1, ("v", "o3", "c", "app"): 1})), 1, 1, 0),
        (_ids(orders=Counter({("u", "o1", "c", "wechat"): 2, ("v", "o2", "c", "app"): 1})), 0, 1, 0),
        (_ids(orders=Counter({("u", "o1", "c", "app"): 1, ("v", "o2", "c", "app"): 1})), 0, 0, 1),  # wrong cell
        (_ids(new={"u": [("o9", "c", "wechat")]}), 0, 0, 1),  # the credit on another order of the same cell
        (_ids(new={}), 1, 0, 0),
        (_ids(new={"u": [("o1", "c", "wechat"), ("o9", "c", "wechat")]}), 0, 1, 0),
        (_ids(buyer={("u", "c"): [("o1", "wechat")], ("v", "c"): [("o2", "app")]}), 0, 1, 0),
    ],
)
def test_compare_tells_lost_doubled_and_misattributed(
    got: Identities, lost: int, doubled: int, misattributed: int
) -> None:
    report = compare(_ids(), got)
    assert (report.lost, report.doubled, report.misattributed) == (lost, doubled, misattributed)
    assert report.exact == (lost == doubled == misattributed == 0)
    assert bool(report.examples) == (not report.exact)


def test_crash_points_parse_and_count() -> None:
    assert parse("") is None
    assert parse("aggregate.sent") == ("aggregate.sent", 1)
    assert parse("commit.after:3") == ("commit.after", 3)
    with pytest.raises(ValueError, match="unknown crash point"):
        parse("nowhere")
    with pytest.raises(ValueError, match=">= 1"):
        parse("sink.written:0")
    points = CrashPoints("ingest.sent:3")
    points.reached("ingest.sent")
    points.reached("aggregate.sent")  # not armed: nothing happens
    points.reached("ingest.sent")
    assert points.armed == {"ingest.sent": 1}  # the third arrival would SIGKILL this process


def test_an_armed_crash_point_kills_the_process_as_kill_9() -> None:
    # Armed as `promo worker` arms it: the lab installs the hook from the environment (streams/lab/crash.py).
    code = (
        "from streams.lab.crash import install_from_env; install_from_env(); from streams.crashpoints import reached;"
        " reached('sink.written'); reached('sink.written'); print('alive')"
    )
    armed = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PROMO_CRASH_AT": "sink.written:2"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert armed.returncode == -signal.SIGKILL and "alive" not in armed.stdout
    unarmed = subprocess.run(
        [sys.executable, "-c", code], env={k: v for k, v in os.environ.items() if k != "PROMO_CRASH_AT"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unarmed.returncode == 0 and "alive" in unarmed.stdout

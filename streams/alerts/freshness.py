"""How far behind the pipeline is, in seconds, per source partition: what the detector judges by.

A consumer's lag in messages says nothing about time: 5,000 waiting messages are a second at 00:00
and an hour at 04:00. What the drop detector needs is the age of the data it is looking at: the
newest instant up to which a partition's input is processed. `PositionClock` keeps, per partition,
a short history of the log's end (the fetch high-watermark) as it was seen at each sample; the
partition is processed up to the latest sample whose end the consumer's position has reached, so
its lag is the time since that sample. A partition that is caught up (position at the end) has lag
0; one that stopped (a stalled stage, a SIGSTOPped worker) ages by the wall clock from the moment
its position stopped reaching the end. Pure: the caller samples the consumer and gives the clock.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

# Samples older than this are not kept: a lag past it reads as "at least this much", which is past
# every threshold anyone acts on (the lag alert fires at 60 s).
HISTORY_S = 900.0
# A partition first seen with records waiting (a worker just started, a partition just assigned) has
# no history to date them by: it counts as this far behind, and ages from there until its position
# reaches the end it was first seen with. Below the lag alert's 60 s, so a short backlog at start
# raises nothing; but drops are not judged on it meanwhile, and a long one becomes a lag alert.
# As soon as the stage holds the first waiting record, its Kafka timestamp (producer or broker time)
# dates the backlog instead, when that is older (by at most the history): a worker restarted after
# 90 s down, or one taking over a dead worker's partitions, is 90 s behind, not 30
# (`PositionClock.sample`, `waiting`). Until then its heartbeats say the guess as undated, and the
# fleet keeps the older word on the partition where that is further behind (`FleetClock.heard`).
UNKNOWN_BEHIND_S = 30.0
# A log's end is known as of the fetch that answered with it. Fetches answer every half second or
# so (a long poll comes back empty when nothing is new); an answer older than this means the broker
# is not answering (paused, unreachable, a network stall): the partition is complete only up to that
# answer, and ages from it. Before, a caught-up partition read "complete as of now" while its broker
# was paused and every producer's events waited: a 30-70 s broker pause read as an outage of the
# total in 10 s (an outside probe: critical drop alerts on every metric, and no lag alert).
ANSWER_GRACE_S = 2.0
# Events in flight and slightly out of order: the newest seconds are not settled yet. The live runner
# judges data up to `now - lag - SETTLE_S`; the scoreboard's sale days evaluate the same way.
SETTLE_S = 5.0


class Lag(NamedTuple):
    """How far behind the pipeline is: the worst partition (what is settled) and the partitions' mean
    (how far their counts in the store reach: one late partition among ten holds back what is settled,
    not what the other nine wrote)."""

    worst: float
    typical: float


class Guess(NamedTuple):
    """A partition first seen behind: when (`seen`), its end then and as of when, and its position then."""

    seen: float
    as_of: float
    end: int
    position: int

    @property
    def sample(self) -> tuple[float, int]:
        return (self.seen - UNKNOWN_BEHIND_S, self.end)


@dataclass
class PositionClock:
    """Per partition: (sample time, log end then) pairs, oldest first."""

    history_s: float = HISTORY_S
    ends: dict[Hashable, deque[tuple[float, int]]] = field(default_factory=dict)
    lags: dict[Hashable, float] = field(default_factory=dict)
    sampled_at: float | None = None  # when the lags were measured
    away: dict[Hashable, tuple[float, int]] = field(default_factory=dict)  # revoked: since when, last end seen
    guessed: dict[Hashable, Guess] = field(default_factory=dict)  # dated from a first sight (UNKNOWN_BEHIND_S)

    def sample(
        self,
        now: float,
        positions: Mapping[Hashable, tuple[int | None, int | None]],
        answered: Mapping[Hashable, float | None] | None = None,
        waiting: Mapping[Hashable, tuple[int, float]] | None = None,
    ) -> None:
        """`positions`: partition -> (log end, the consumer's next offset), either None when unknown;
        `answered`: partition -> when the fetch that said that end answered (None, or missing: now);
        `waiting`: partition -> (offset, Kafka timestamp in epoch s) of the first record its stage was
        handed in this assignment, where it knows one: what dates a first-seen backlog.

        A partition missing from `positions` (revoked, or owned by another worker) no longer counts,
        but its history is kept for its return: a worker frozen past its session (SIGSTOP, a stopped
        VM) has its partitions revoked and assigned again when it wakes, and they are as far behind
        as the last end it had reached before it froze, not "first seen". If the consumer comes back
        past every end remembered, another worker had it meanwhile: the history says nothing then."""
        self.sampled_at = now
        for gone in set(self.ends) - set(positions):
            self.lags.pop(gone, None)
            self.guessed.pop(gone, None)
            last = self.ends[gone][-1][1] if self.ends[gone] else -1
            since, _ = self.away.setdefault(gone, (now, last))
            if now - since > self.history_s:
                del self.ends[gone], self.away[gone]
        for key, (end, position) in positions.items():
            ends = self.ends.setdefault(key, deque())
            # The end is known as of its answer; a recent one is as good as now
            as_of = (answered or {}).get(key)
            as_of = now if as_of is None or as_of >= now - ANSWER_GRACE_S else as_of
            if key in self.away and position is not None:  # back, and where its consumer stands is known
                _, last = self.away.pop(key)
                if position > last:
                    ends.clear()  # processed elsewhere while away: the old ends say nothing
            if end is not None and not ends and position is not None and position < end:
                guess = self.guessed[key] = Guess(now, as_of, end, position)
                ends.append(guess.sample)  # behind since an unknown time: see above
            elif end is not None and (ends or position is not None) and (not ends or end != ends[-1][1]):
                # Only when the end moved: a quiet log keeps its one sample. Not a first end while the
                # position is unknown (a new group's first batch not yet held): that end, dated now,
                # would pass for a log caught up a moment ago, and the backlog be no first sight.
                ends.append((as_of, end))
            if key in self.guessed:
                self._date(key, ends, (waiting or {}).get(key))
            if end is None or position is None:
                continue  # unknown: the last known lag stands
            reached = None
            while ends and ends[0][1] <= position:
                reached = ends.popleft()  # everything up to that end is processed
            if reached is not None:
                ends.appendleft(reached)  # the newest reached sample stays: lag is measured from it
            if key in self.guessed and (not ends or ends[0] != self.guessed[key].sample):
                del self.guessed[key]  # past the guess: the lag is dated by a real sample now
            if position >= (ends[-1][1] if ends else 0):
                self.guessed.pop(key, None)
                self.lags[key] = now - as_of  # caught up with the newest end seen, as of its answer
                if ends:
                    # ... and complete as of that answer: a quiet log's one sample is dated when its end
                    # last moved, so the next record after minutes of quiet read as minutes behind (a lag
                    # alert after every pause in traffic, and a jump in a sparse partition's lag that
                    # held back the counts a step judged: an outside probe's false outage on the total).
                    ends[-1] = (max(as_of, ends[-1][0]), ends[-1][1])
            elif reached is not None:
                # Complete up to that sample's instant: what came after it is not all processed.
                self.lags[key] = max(now - reached[0], 0.0)
            else:
                self.lags[key] = max(now - ends[0][0], 0.0)  # behind even the oldest end remembered
            while len(ends) > 1 and now - ends[1][0] > self.history_s:
                ends.popleft()

    def _date(self, key: Hashable, ends: deque[tuple[float, int]], waiting: tuple[int, float] | None) -> None:
        """A first-seen partition's guess, dated by its first waiting record where that is known: the
        backlog is complete up to that record's timestamp (everything before its offset processed;
        never later than the guess), and up to the first sight once the end seen then is reached.
        A guess the position has passed, or a record from past the position seen then, says nothing.
        A timestamp older than the history dates it as the history's start: past every threshold, and
        a lab's simulated clock (a year back) does not read as a year behind."""
        guess = self.guessed[key]
        if not ends or ends[0] != guess.sample:
            del self.guessed[key]  # no longer dated from the guess
        elif waiting is not None and waiting[0] <= guess.position:
            offset, stamped = waiting
            ends[0] = (guess.as_of, guess.end)
            ends.appendleft((max(min(stamped, guess.sample[0]), guess.seen - self.history_s), offset))
            del self.guessed[key]

    def undated(self) -> set[Hashable]:
        """Partitions whose lag is still the first-sight guess (their backlog not dated yet): it may
        fall short (a worker restarted after minutes down)."""
        return set(self.guessed)

    @property
    def known(self) -> bool:
        """Whether any partition's lag is known, or remembered while it is away (revoked): before the
        first assignment a lag of 0 would only mean nobody has looked."""
        return bool(self.lags) or bool(self.away)

    def lag_s(self, now: float | None = None) -> float:
        """The worst partition's lag in seconds (0 when none is known), as of the last sample, or as of
        `now`: the data is complete up to (last sample - lag), and that instant does not move between
        two samples. (A lag read a second after its sample and taken from the later clock would let
        what is settled creep forward through a stall: a second of "settled" data that never came,
        at every evaluation, reads as an outage.)"""
        return max(self.lags.values(), default=0.0) + self._age(now)

    def lags_as_of(self, now: float) -> dict[Hashable, float]:
        """Every partition's lag as of `now`, as `lag_s` takes them."""
        age = self._age(now)
        return {key: lag + age for key, lag in self.lags.items()}

    def _age(self, now: float | None) -> float:
        return max(now - self.sampled_at, 0.0) if now is not None and self.sampled_at is not None else 0.0

    def worst(self) -> tuple[Hashable, float] | None:
        if not self.lags:
            return None
        key = max(self.lags, key=lambda k: self.lags[k])
        return key, self.lags[key]


# -- the fleet: every worker's clock, as its heartbeats tell it --------------------------------------

HEARTBEAT_VERSION = 1


def heartbeat(worker: str, at: float, lags: Mapping[str, float], undated: Collection[str] = ()) -> bytes:
    """One worker's freshness for the heartbeats topic: its partitions ("topic:partition") and how far
    behind each was at `at` (its clock's last sample); `undated`, those whose lag is still the
    first-sight guess (`PositionClock.undated`; a reader without it takes the guess as said)."""
    doc: dict[str, object] = {
        "v": HEARTBEAT_VERSION,
        "worker": worker,
        "at": round(at, 3),
        "lags": {k: round(v, 3) for k, v in lags.items()},
    }
    if undated:
        doc["undated"] = sorted(undated)
    return json.dumps(doc, separators=(",", ":")).encode()


class Heartbeat(NamedTuple):
    worker: str
    at: float
    lags: dict[str, float]
    undated: frozenset[str] = frozenset()


def read_heartbeat(value: bytes | None) -> Heartbeat | None:
    """A heartbeat record, None for anything else (it is skipped, not fatal)."""
    try:
        doc = json.loads(value or b"")
        worker, at, lags = str(doc["worker"]), float(doc["at"]), doc["lags"]
        undated = doc.get("undated", [])
        if not isinstance(undated, list):
            return None
        return Heartbeat(worker, at, {str(k): float(v) for k, v in lags.items()}, frozenset(map(str, undated)))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass
class FleetClock:
    """Per partition, the newest word on it from any worker's heartbeat: (when, lag then, who).

    The detector runs in one worker and samples only the partitions that worker consumes; the rest
    of the pipeline is on other workers. A partition's lag is what its owner last said plus how long
    ago that was: a worker whose stage stalls says so, and a worker that froze (SIGSTOP, a stopped VM)
    or died says nothing, so its partitions age by the wall clock until another worker takes them
    over and speaks for them. Without this the detector took the other workers' missing numbers as a
    drop (a stage stalled in the other of two workers raised drop alerts at the total)."""

    history_s: float = HISTORY_S
    parts: dict[str, tuple[float, float, str]] = field(default_factory=dict)

    def heard(self, worker: str, at: float, lags: Mapping[str, float], undated: Collection[str] = ()) -> None:
        """`undated`: partitions whose lag is the speaker's first-sight guess (it just found them with
        records waiting): the word before, aged to `at`, stands where it is further behind. (A worker
        taking over a killed worker's partitions said "30 s" of a 130 s backlog, and the newest word
        won: an outside probe.)"""
        for key, lag in lags.items():
            old = self.parts.get(key)
            if old is None or at >= old[0]:
                if key in undated and old is not None:
                    lag = max(lag, old[1] + (at - old[0]))
                self.parts[key] = (at, lag, worker)

    def lag_s(self, now: float, skip: Collection[str] = ()) -> float:
        """The worst partition's lag as of `now`, leaving out `skip` (the caller's own partitions,
        which its own clock measures better) and forgetting partitions nobody spoke for in the history."""
        return max(self.lags(now, skip).values(), default=0.0)

    def lags(self, now: float, skip: Collection[str] = ()) -> dict[str, float]:
        """Every partition's lag as of `now`, as `lag_s` takes them."""
        out = {}
        for key, (at, lag, _) in list(self.parts.items()):
            if now - at > self.history_s:
                del self.parts[key]
            elif key not in skip:
                out[key] = lag + max(now - at, 0.0)
        return out


# A worker whose newest heartbeat is this much older than the newest of any has left the pipeline
# (scaled down; its partitions moved): its last row no longer says anything about the lag.
LEFT_S = 300.0


class Beat(NamedTuple):
    """What one worker's heartbeat rows (promo.pipeline_status) say: its newest row's time and worst
    lag then; whether that row says each partition's lag (schema v6 on; False: a row from before);
    and its newest word on its partitions (the newest row that names one: when, "topic:partition" ->
    lag then). A worker holding none, or between a revocation and an assignment, names none."""

    worker: str
    at: float
    worst: float
    says_partitions: bool = False
    word_at: float = 0.0
    word: Mapping[str, float] | None = None


def fleet_lag_of(beats: Collection[Beat], now: float) -> float | Lag | None:
    """How far the pipeline is behind as of `now`, from the workers' heartbeat rows, as a worker's own
    detector has it from the heartbeats topic: per partition the newest word on it from any worker,
    aged by how long ago that was (`FleetClock`: a worker that left is replaced by the partitions'
    new owners; a frozen one ages); the worst and the mean of them. Every word older than the history
    (900 s): the pipeline stopped then, and is that far behind. No word on any partition ever (the
    pipeline has just started): not known, None, and the runner settles nothing until it is. A worker
    still there whose rows are from before v6: the worst of each worker's newest row, aged, as
    `promo alerts run` had it before. No heartbeat at all: as behind as it gets (a day)."""
    if not beats:
        return 86400.0
    newest = max(b.at for b in beats)
    present = [b for b in beats if b.at >= newest - LEFT_S]
    if not all(b.says_partitions for b in present):
        return max(now - b.at + b.worst for b in present)
    fleet = FleetClock()
    for beat in beats:
        if beat.word:
            fleet.heard(beat.worker, beat.word_at, beat.word)
    lags = fleet.lags(now)
    if lags:
        return Lag(max(lags.values()), sum(lags.values()) / len(lags))
    said = [now - b.word_at + max(b.word.values()) for b in beats if b.word]
    if said:  # every word older than the fleet's history: the pipeline stopped that long ago
        return Lag(min(said), min(said))
    return None


def undated_keys(clock: PositionClock) -> set[str]:
    """`PositionClock.undated` by "topic:partition", as heartbeats name them."""
    return set(keyed(dict.fromkeys(clock.undated(), 0.0)))


def keyed(lags: Mapping[Hashable, float]) -> dict[str, float]:
    """A clock's lags by "topic:partition" (`partition_key`), as heartbeats carry them."""
    return {key: lag for tp, lag in lags.items() if (key := partition_key(tp)) is not None}


def partition_key(tp: Hashable) -> str | None:
    """The "topic:partition" of aiokafka's TopicPartition or Faust's TP (both have the two fields), None
    for a key that is neither: what heartbeats and the detector's own clock are compared by."""
    topic, partition = getattr(tp, "topic", None), getattr(tp, "partition", None)
    return f"{topic}:{partition}" if isinstance(topic, str) and isinstance(partition, int) else None

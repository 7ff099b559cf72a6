"""The child side of a peer process: its arguments, and how it tells the bench where it stands.

A peer writes `ready.json` in its work dir when everything is set up (store open, topics there, app
built) and it is about to consume; `result.json` when it has consumed every expected message,
flushed, and read its totals back from ClickHouse. Both carry `time.monotonic()` stamps, one clock
for every process on the host. Then it idles until the bench closes its stdin, so that the bench can
read its CPU time and peak RSS from /proc while it is still alive.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.contract.topics import INPUTS

READY = "ready.json"
RESULT = "result.json"


@dataclass(frozen=True)
class PeerArgs:
    bootstrap: str
    prefix: str
    partitions: int
    work_dir: Path
    existing_topic: str
    expected_messages: int  # on the three input topics
    existing_messages: int  # on the import topic
    loglevel: str

    @property
    def inputs(self) -> list[str]:
        return [f"{self.prefix}{s}" for s in INPUTS]


def parse_args(argv: list[str] | None, description: str) -> PeerArgs:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True, help="host:port of the broker")
    parser.add_argument("--prefix", required=True, help="topic prefix of the pipeline's input topics")
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--work-dir", type=Path, required=True, help="store, state and result files")
    parser.add_argument("--existing-topic", required=True, help="imported existing buyers")
    parser.add_argument("--expected-messages", type=int, required=True, help="messages on the input topics")
    parser.add_argument("--existing-messages", type=int, required=True, help="messages on the import topic")
    parser.add_argument("--loglevel", default="WARNING")
    ns = parser.parse_args(argv)
    return PeerArgs(ns.bootstrap, ns.prefix, ns.partitions, ns.work_dir.resolve(), ns.existing_topic,
                    ns.expected_messages, ns.existing_messages, ns.loglevel.upper())  # fmt: skip


@dataclass
class Progress:
    """How far a peer is; `done` once every input message is in and every routed row is owned."""

    expected_inputs: int
    inputs: int = 0  # messages taken from the input and import topics
    routed: int = 0  # rows handed on to the per-user step (through a repartition topic or not)
    owned: int = 0  # rows the per-user step has applied
    elements: int = 0  # elements of the input messages: accepted + rejected
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> bool:
        return self.inputs >= self.expected_inputs and self.owned >= self.routed


def _write(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)  # atomic: the bench never reads half a file


def mark_ready(work_dir: Path) -> float:
    now = time.monotonic()
    _write(work_dir / READY, {"t": now, "pid": os.getpid()})
    return now


def write_result(work_dir: Path, ready_t: float, progress: Progress, totals: list[dict[str, Any]]) -> None:
    _write(work_dir / RESULT, {
        "ready": ready_t, "done": time.monotonic(), "elements": progress.elements, "accepted": progress.accepted,
        "rejected": dict(sorted(progress.rejected.items())), "totals": totals,
    })  # fmt: skip


def exit_when_stdin_closes() -> None:
    """SIGTERM ourselves when the bench closes our stdin (or dies): no orphaned peers."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()

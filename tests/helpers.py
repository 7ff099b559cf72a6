"""Test-only conveniences that used to sit in product code (issue 15)."""

from __future__ import annotations

from pathlib import Path

from streams.contract.facts import Deltas
from streams.contract.wire import delta_rows
from streams.sink.clickhouse import ClickHouseStore


def rejected_by_reason(deltas: Deltas) -> dict[str, int]:
    """The rejection counts of `deltas`, summed by reason (as the truth keeps them)."""
    out: dict[str, int] = {}
    for key, count in deltas.rejections.items():
        out[key.reason] = out.get(key.reason, 0) + count
    return out


def insert_deltas(store: ClickHouseStore, deltas: Deltas, markers: dict[int, int]) -> int:
    """Write `deltas` as the sink would, with its markers (one atomic insert)."""
    return store.insert_wire_rows(*delta_rows(deltas), markers)


def proc_children(pid: int) -> dict[int, str]:
    """pid -> command line of the live (non-zombie) children of `pid` (Linux's /proc)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(stat.parent.name)] = cmdline
    return out


def proc_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"

"""`promo dashboards push` against a Grafana API double on loopback (tests/integration/grafana_double.py).

Not a real Grafana: none can be installed here. The double answers like Grafana's HTTP API for the
endpoints the push uses; connection refused and a server that never answers are real sockets.
"""

from __future__ import annotations

import copy
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.dashboards.grafana import build_all
from streams.dashboards.push import PushError, load_boards, push_all
from streams.kit.harness import PROMO
from tests.integration.grafana_double import EDITOR_TOKEN, VIEWER_TOKEN, GrafanaDouble

ROOT = Path(__file__).resolve().parents[2]
UIDS = {"promo-war-room", "promo-campaign", "promo-health"}


@pytest.fixture
def grafana() -> Iterator[GrafanaDouble]:
    double = GrafanaDouble()
    double.add_clickhouse_datasource()
    double.start()
    try:
        yield double
    finally:
        double.stop()


@pytest.fixture
def refused_url() -> str:
    """A loopback port nobody listens on: connecting is refused for real."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def committed() -> dict[str, dict[str, object]]:
    return load_boards(ROOT / "dashboards")


def test_first_push_creates_then_a_second_changes_nothing(grafana: GrafanaDouble) -> None:
    first = push_all(grafana.url, EDITOR_TOKEN, committed())
    assert first.folder.created and (first.folder.uid, first.folder.title) == ("promo", "大促 / Promo")
    assert {p.uid: p.status for p in first.dashboards} == dict.fromkeys(UIDS, "created")
    assert all(p.url.startswith(grafana.url + "/d/") for p in first.dashboards)
    versions = {uid: d["dashboard"]["version"] for uid, d in grafana.dashboards.items()}

    second = push_all(grafana.url, EDITOR_TOKEN, committed())
    assert not second.folder.created and second.folder.uid == "promo"
    assert {p.uid: p.status for p in second.dashboards} == dict.fromkeys(UIDS, "unchanged")
    # Same uids, no copies, nothing rewritten, the folder made once, and each one in it.
    assert set(grafana.dashboards) == UIDS and len(grafana.folders) == 1
    assert {uid: d["dashboard"]["version"] for uid, d in grafana.dashboards.items()} == versions
    assert grafana.calls("POST", "/api/folders") == 1 and grafana.calls("POST", "/api/dashboards/db") == 3
    assert {d["meta"]["folderUid"] for d in grafana.dashboards.values()} == {"promo"}
    # What Grafana holds is the committed JSON (less the id and version it sets).
    for board in committed().values():
        stored = grafana.dashboards[str(board["uid"])]["dashboard"]
        assert {k: v for k, v in stored.items() if k not in ("id", "version")} == {
            k: v for k, v in board.items() if k != "version"
        }


def test_a_changed_dashboard_is_updated_in_place(grafana: GrafanaDouble) -> None:
    push_all(grafana.url, EDITOR_TOKEN, committed())
    ids = {uid: d["dashboard"]["id"] for uid, d in grafana.dashboards.items()}
    boards = copy.deepcopy(committed())
    boards["promo-health.json"]["refresh"] = "10s"
    report = push_all(grafana.url, EDITOR_TOKEN, boards)
    assert {p.uid: p.status for p in report.dashboards} == {
        "promo-war-room": "unchanged", "promo-campaign": "unchanged", "promo-health": "updated",
    }  # fmt: skip
    health = grafana.dashboards["promo-health"]["dashboard"]
    assert health["refresh"] == "10s" and health["version"] == 2
    assert {uid: d["dashboard"]["id"] for uid, d in grafana.dashboards.items()} == ids  # same dashboards
    # Freshly built boards equal the committed ones: pushing them changes nothing.
    push_all(grafana.url, EDITOR_TOKEN, committed())
    assert {p.status for p in push_all(grafana.url, EDITOR_TOKEN, build_all()).dashboards} == {"unchanged"}


def test_an_existing_folder_is_found_by_title(grafana: GrafanaDouble) -> None:
    grafana.add_folder("ops-7", "大促 / Promo")
    report = push_all(grafana.url, EDITOR_TOKEN, committed())
    assert (report.folder.uid, report.folder.created) == ("ops-7", False)
    assert grafana.calls("POST", "/api/folders") == 0 and len(grafana.folders) == 1
    assert {d["meta"]["folderUid"] for d in grafana.dashboards.values()} == {"ops-7"}


def test_a_missing_datasource_stops_before_anything_is_written(grafana: GrafanaDouble) -> None:
    grafana.datasources.clear()
    with pytest.raises(PushError, match=r"has no datasource with uid 'promo-clickhouse'"):
        push_all(grafana.url, EDITOR_TOKEN, committed())
    assert grafana.dashboards == {} and grafana.folders == {}
    assert grafana.calls("POST", "/api/") == 0


def test_a_datasource_of_another_type_is_refused(grafana: GrafanaDouble) -> None:
    grafana.datasources["promo-clickhouse"]["type"] = "prometheus"
    with pytest.raises(PushError, match="is of type 'prometheus'"):
        push_all(grafana.url, EDITOR_TOKEN, committed())


@pytest.mark.parametrize(
    ("token", "message"),
    [("glsa_wrong", r"rejected the token \(HTTP 401\)"), (VIEWER_TOKEN, r"\(HTTP 403\)")],
    ids=["wrong-token", "viewer-token"],
)
def test_a_bad_token_is_one_clear_error(grafana: GrafanaDouble, token: str, message: str) -> None:
    with pytest.raises(PushError, match=message) as caught:
        push_all(grafana.url, token, committed())
    assert token not in str(caught.value)
    assert grafana.dashboards == {}


def test_a_provisioned_dashboard_is_not_overwritten(grafana: GrafanaDouble) -> None:
    push_all(grafana.url, EDITOR_TOKEN, committed())
    grafana.dashboards["promo-health"]["meta"]["provisioned"] = True
    boards = copy.deepcopy(committed())
    boards["promo-health.json"]["refresh"] = "10s"
    with pytest.raises(PushError, match=r"promo-health .* is provisioned"):
        push_all(grafana.url, EDITOR_TOKEN, boards)


def test_unreachable_grafana_is_one_clear_error(refused_url: str, silent_url: str) -> None:
    with pytest.raises(PushError, match=r"cannot reach Grafana at http://127\.0\.0\.1:\d+ .*: connection refused"):
        push_all(refused_url, EDITOR_TOKEN, committed(), timeout_s=2)
    with pytest.raises(PushError, match=r"did not answer within 0\.5 s"):
        push_all(silent_url, EDITOR_TOKEN, committed(), timeout_s=0.5)


# --------------------------------------------------------------------------------------------
# The command


def promo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    return subprocess.run([PROMO, "dashboards", "push", *args], capture_output=True, text=True, timeout=60,
                          env={**base, **(env or {})}, cwd=ROOT, check=False)  # fmt: skip


def test_cli_pushes_with_url_and_token_from_the_environment(grafana: GrafanaDouble) -> None:
    env = {"GRAFANA_URL": grafana.url, "GRAFANA_TOKEN": EDITOR_TOKEN}
    first = promo(env=env)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert "folder '大促 / Promo' (uid promo) created" in lines[0]
    assert sorted(line.split()[:2][0] for line in lines[1:]) == ["created"] * 3
    second = promo("--fresh", env=env)
    assert second.returncode == 0, second.stderr
    assert sorted(line.split()[0] for line in second.stdout.splitlines()[1:]) == ["unchanged"] * 3
    assert EDITOR_TOKEN not in first.stdout + first.stderr + second.stdout + second.stderr
    assert set(grafana.dashboards) == UIDS


def _one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("promo: error:") and message in lines[0], lines[0]
    assert "Traceback" not in result.stderr and EDITOR_TOKEN not in result.stderr


def test_cli_errors_are_one_line_with_exit_2(
    grafana: GrafanaDouble, refused_url: str, silent_url: str, tmp_path: Path
) -> None:
    token = {"GRAFANA_TOKEN": EDITOR_TOKEN}
    _one_line_error(promo("--url", refused_url, env=token), "connection refused")
    _one_line_error(promo("--url", silent_url, "--timeout", "0.5", env=token), "did not answer within 0.5 s")
    _one_line_error(promo("--url", grafana.url, "--token", "glsa_wrong"), "rejected the token (HTTP 401)")
    _one_line_error(promo("--url", grafana.url, "--token", VIEWER_TOKEN), "HTTP 403")
    _one_line_error(promo("--url", grafana.url), "no Grafana token")
    _one_line_error(promo(env=token), "no Grafana URL")
    _one_line_error(promo("--url", "grafana:3000", env=token), "--url must look like http(s)://")
    _one_line_error(promo("--url", grafana.url, "--dir", str(tmp_path), env=token), "no *.json dashboards")
    assert grafana.dashboards == {}
    for status in (500, 400):  # a server echoing the Authorization header it got: the token is hidden
        grafana.echo_auth_status = status
        _one_line_error(promo("--url", grafana.url, env=token), "auth was Bearer ********")
    grafana.echo_auth_status = None
    grafana.datasources.clear()
    _one_line_error(promo("--url", grafana.url, env=token), "no datasource with uid 'promo-clickhouse'")
    assert grafana.dashboards == {} and grafana.folders == {}

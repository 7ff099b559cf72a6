"""The worker's alert pages refuse what they do not take (pure: the check on a query's keys)."""

from __future__ import annotations

from multidict import MultiDict

from streams.worker.alerting import unknown_parameter


def test_known_parameters_pass_and_a_typo_or_a_repeat_is_named() -> None:
    allowed = ("since_s", "source", "firing")
    assert unknown_parameter(MultiDict([("since_s", "1"), ("firing", "1")]), allowed) is None
    assert unknown_parameter(MultiDict(), ()) is None
    typo = unknown_parameter(MultiDict([("sinse_s", "1")]), allowed)
    assert typo is not None and "'sinse_s'" in typo["error"] and "since_s" in typo["error"]
    twice = unknown_parameter(MultiDict([("since_s", "1"), ("since_s", "2")]), allowed)
    assert twice is not None and "more than once" in twice["error"]
    assert unknown_parameter(MultiDict([("all", "1")]), ()) == {"error": "unknown parameter 'all'; allowed: none"}

"""One place names the topics (issue 15): streams/contract/topics.py. `Settings.topic` takes only those
names, and no other module spells the input triple or a topic name in a `topic()` call."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import streams
from streams.config import Settings
from streams.contract.events import Kind
from streams.contract.topics import INPUTS, Topic

SOURCE = Path(streams.__file__).parent


def test_settings_topic_prefixes_our_names_and_refuses_others() -> None:
    settings = Settings(topic_prefix="p.", input_prefix="in.")
    assert settings.topic(Topic.DELTAS) == "p.deltas"
    assert settings.topic(Topic.ORDERS) == "in.orders"
    assert settings.topic("routed") == "p.routed"
    with pytest.raises(ValueError, match="delta"):
        settings.topic("delta")


def test_the_inputs_are_in_the_order_of_the_event_kinds() -> None:
    assert [k.topic_suffix for k in Kind] == list(INPUTS) == ["clicks", "shares", "orders"]


def test_no_module_but_topics_spells_the_names() -> None:
    triple = re.compile(r"""\(\s*["']clicks["'],\s*["']shares["'],\s*["']orders["']\s*\)""")
    literal_call = re.compile(r"""\.topic\(\s*["'](clicks|shares|orders|routed|deltas|dlq)["']""")
    offenders = [
        str(path.relative_to(SOURCE))
        for path in SOURCE.rglob("*.py")
        if path.name != "topics.py" and (triple.search(path.read_text()) or literal_call.search(path.read_text()))
    ]
    assert offenders == []

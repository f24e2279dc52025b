"""A migration waits for every node to hold the schema it changed, and says so when they do
not agree in time."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.common.cassandra.migrations import await_schema_agreement
from services.common.errors import TransientError


class Control:
    """A control connection whose nodes agree after `disagree` polls (never if None)."""

    def __init__(self, disagree: int | None) -> None:
        self.disagree = disagree
        self.waits: list[float] = []

    def wait_for_schema_agreement(self, wait_time: float) -> bool:
        self.waits.append(wait_time)
        return self.disagree is not None and len(self.waits) > self.disagree


def _session(control: Control) -> Any:
    return SimpleNamespace(cluster=SimpleNamespace(control_connection=control))


def test_it_polls_until_the_nodes_agree() -> None:
    control = Control(disagree=2)
    await_schema_agreement(_session(control), wait_s=60)
    assert len(control.waits) == 3
    assert all(1.0 <= w <= 10.0 for w in control.waits)  # each poll is bounded


def test_nodes_that_never_agree_give_a_transient_error_that_says_what_to_check() -> None:
    control = Control(disagree=None)
    with pytest.raises(TransientError, match="did not agree on the schema within 0s"):
        await_schema_agreement(_session(control), wait_s=0.05)
    assert control.waits  # it asked at least once

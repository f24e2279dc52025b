"""The three priorities; the topic a request arrives on is its priority."""

from __future__ import annotations

import enum


class Priority(enum.StrEnum):
    CRITICAL = "CRITICAL"
    TRANSACTIONAL = "TRANSACTIONAL"
    BULK = "BULK"

    @property
    def slug(self) -> str:
        return self.value.lower()

    @property
    def rank(self) -> int:
        """0 is the most urgent."""
        return PRIORITIES.index(self)


PRIORITIES: tuple[Priority, ...] = (Priority.CRITICAL, Priority.TRANSACTIONAL, Priority.BULK)

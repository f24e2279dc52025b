"""What a reason code means, for whom, and what follows from it: the metadata of Reason."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from services.common.avro.records import EventType


class Service(enum.StrEnum):
    """Where a reason code comes from (deploy names)."""

    INGEST = "ingest"
    ROUTER = "router"
    SENDER = "sender"
    EVENT_PUBLISHER = "event-publisher"
    CLI = "mailstream CLI"


class Suppresses(enum.StrEnum):
    """What an event with this reason does to the recipient's place on the suppression list
    (the event-publisher's defaults, services/event_publisher/config.py)."""

    NO = "no"
    HARD_FOR_GOOD = "a HARD bounce, for good"
    HARD_EXPIRING = "a HARD bounce, for 30 days"
    SOFT_COUNTED = "a SOFT bounce counts: 3 in 72 h suppress for 24 h (soft_bounces)"
    IS_ENTRY = "it is the reason of a suppression-list entry"


@dataclass(frozen=True)
class ReasonInfo:
    events: tuple[EventType, ...]  # empty: a suppression-list entry's reason, never an event's
    services: tuple[Service, ...]
    suppresses: Suppresses
    means: str
    action: str  # what the upstream service that sent the request should do

    @property
    def fate(self) -> str:
        """Terminal or retried: a consequence of the event types, so it cannot disagree."""
        retried = EventType.DEFERRED in self.events
        terminal = any(e.terminal for e in self.events)
        if retried and terminal:
            return "retried when DEFERRED, else terminal"
        return "retried" if retried else "terminal" if terminal else "-"


SMTP = (EventType.DEFERRED, EventType.BOUNCED)
FIX = "Fix the request and send it again."
# Once ingest accepted a message its message_id is taken: a resend under it is a duplicate.
FIX_NEW_ID = "Fix the request and send it again under a new message_id."
BAD_ADDRESS = "Do not resend; correct the address."


def rejected(
    means: str, action: str = FIX, *, by: tuple[Service, ...] = (Service.INGEST,)
) -> ReasonInfo:
    return ReasonInfo((EventType.REJECTED,), by, Suppresses.NO, means, action)


def smtp(means: str, action: str, suppresses: Suppresses = Suppresses.NO) -> ReasonInfo:
    return ReasonInfo(SMTP, (Service.SENDER,), suppresses, means, action)


def entry(by: Service, means: str, action: str) -> ReasonInfo:
    return ReasonInfo((), (by,), Suppresses.IS_ENTRY, means, action)


def deferred(means: str, action: str, *, by: Service) -> ReasonInfo:
    return ReasonInfo((EventType.DEFERRED,), (by,), Suppresses.NO, means, action)


def expired(means: str, action: str, *, by: tuple[Service, ...]) -> ReasonInfo:
    return ReasonInfo((EventType.EXPIRED,), by, Suppresses.NO, means, action)


def no_route(means: str) -> ReasonInfo:
    """The router's DNS verdict that a domain can never receive mail: a HARD bad_domain."""
    return ReasonInfo(
        (EventType.BOUNCED,), (Service.ROUTER,), Suppresses.HARD_FOR_GOOD, means, BAD_ADDRESS
    )

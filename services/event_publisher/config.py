"""Settings of the event-publisher: the shared ones plus the suppression policy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import CommonSettings
from services.common.reasons import Reason

_DAY_S = 24 * 3600


class SuppressionSettings(BaseModel):
    """`MAILSTREAM_SUPPRESSION__...`; an expiry of 0 seconds means the suppression never lapses."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True  # false: bounces suppress nothing
    # A hard bounce of these categories says the address can never receive mail: for good.
    permanent_categories: tuple[str, ...] = (Reason.INVALID_RECIPIENT, Reason.BAD_DOMAIN)
    # Other hard bounces (disabled mailbox, unroutable, relay denied, unrecognised 5xx) may
    # heal: a disabled account is reactivated, a domain fixes its MX.
    hard_expiry_s: int = Field(default=30 * _DAY_S, ge=0)
    # How long a spam complaint suppresses the address (0: for good).
    complaint_expiry_s: int = Field(default=0, ge=0)
    # This many soft bounces within the window suppress the address for soft_expiry_s.
    soft_threshold: int = Field(default=3, ge=1)
    soft_window_s: int = Field(default=72 * 3600, ge=1)  # the window those are counted in
    soft_expiry_s: int = Field(default=_DAY_S, ge=0)  # how long they then suppress it
    # Only soft bounces about the recipient's mailbox or host count; those about our message or
    # our reputation (spam_block, authentication, policy, tls, content, size ...) are ours to
    # fix and would otherwise suppress every recipient of a misconfigured sender.
    soft_categories: tuple[str, ...] = (
        Reason.QUOTA,
        Reason.RATE_LIMITED,
        Reason.GREYLISTED,
        Reason.CONNECTION,
        Reason.DNS_FAILURE,
        Reason.MESSAGE_EXPIRED,
    )


class EventPublisherSettings(CommonSettings):
    suppression: SuppressionSettings = Field(default_factory=SuppressionSettings)

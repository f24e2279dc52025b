"""Settings of the router."""

from __future__ import annotations

import dns.exception
import dns.name
import dns.rdatatype
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.config import CommonSettings
from services.common.routing import RoutingSettings


class DnsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    # Empty: the system resolver (/etc/resolv.conf).
    nameservers: str = ""
    port: int = 53  # of those nameservers
    # How long one lookup may take, retries included; longer is a timeout.
    timeout_s: float = 5.0
    # The longest an MX route is cached, whatever the TTL of its records.
    max_cache_ttl_s: int = 3600
    # Recipient domains whose MX route is cached; past it the least recently mailed is
    # forgotten (and looked up again when next mailed). A route of two MX hosts takes about
    # 650 bytes: some 13 MB at the bound.
    max_cache_entries: int = Field(default=20_000, ge=1)
    # When a lookup times out, this query tells a slow domain (its mail is deferred) from a
    # resolver that answers nothing (the lanes wait for it: services/router/mx.py). Any
    # response counts, REFUSED included, so the root needs no recursion to serve as probe.
    probe_name: str = "."
    probe_type: str = "NS"  # the record type that query asks for
    probe_timeout_s: float = Field(default=2.0, gt=0)  # how long the probe waits for an answer
    # How long an unanswered probe stands before the next timeout probes again.
    probe_cache_s: float = Field(default=2.0, ge=0)

    @field_validator("probe_name")
    @classmethod
    def _a_name(cls, value: str) -> str:
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a DNS name: {exc}") from None
        return value

    @field_validator("probe_type")
    @classmethod
    def _a_type(cls, value: str) -> str:
        try:
            dns.rdatatype.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a DNS record type: {exc}") from None
        return value.upper()


class MtaStsSettings(BaseModel):
    """RFC 8461 policy fetching (services/router/mta_sts.py)."""

    model_config = ConfigDict(frozen=True)
    enabled: bool = True  # false: no policy is looked up or enforced
    # Port of the policy hosts' HTTPS: 443 but in tests.
    https_port: int = 443
    # CA bundle to verify policy hosts with; None: the system store.
    ca_file: str | None = None
    fetch_timeout_s: float = 10.0  # for one policy fetch, connection included
    max_policy_bytes: int = 64 * 1024  # a larger policy is refused (RFC 8461 allows 64 KiB)
    # How long "no _mta-sts TXT record" is remembered.
    negative_ttl_s: float = 300.0
    max_txt_ttl_s: float = 3600.0  # the longest a _mta-sts TXT id is cached, whatever its TTL
    # After a failed fetch, how long the same policy id is not fetched again.
    failure_backoff_s: float = 60.0
    # Recipient domains whose TXT id, policy and last failure are each remembered. Past it
    # the least recently mailed domain's are forgotten before their TTL or max_age: its
    # policy is fetched again when next needed, so trust on first use starts over there.
    max_cache_entries: int = Field(default=20_000, ge=1)


class RouterOptions(BaseModel):
    model_config = ConfigDict(frozen=True)
    # Local part of the envelope sender (Return-Path) at the sender's domain.
    return_path_local: str = "bounces"
    # Limits of one template render (each of subject, text and html).
    render_time_limit_ms: int = 200
    render_max_chars: int = 512 * 1024  # characters one rendered part may have
    # The largest built message (before DKIM) the router hands on; larger is REJECTED
    # message_too_large. Kept under kafka.max_record_bytes, which the task must fit in.
    max_message_bytes: int = 6 * 1024 * 1024


class RouterSettings(CommonSettings):
    dns: DnsSettings = Field(default_factory=DnsSettings)
    router: RouterOptions = Field(default_factory=RouterOptions)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    mta_sts: MtaStsSettings = Field(default_factory=MtaStsSettings)

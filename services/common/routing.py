"""Routing policy: the egress pool or smarthost a tenant's mail of each priority leaves by."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from services.common.priority import Priority
from services.common.spec import SpecModel

# How a connection uses TLS: required (STARTTLS with a verified certificate, or no delivery),
# opportunistic (STARTTLS where offered, unverified), none.
TlsMode = Literal["required", "opportunistic", "none"]


class EgressPool(BaseModel):
    """Source addresses that connections bind to (each new connection takes the next)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    # IPv4 or IPv6 addresses of this host (the pod) to connect from, in turn.
    source_addresses: tuple[str, ...] = Field(min_length=1)

    @field_validator("source_addresses")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(str(ipaddress.ip_address(a.strip())) for a in value)


class Smarthost(BaseModel):
    """A relay that takes all mail of a route instead of the recipient domains' MX hosts."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    host: str  # the relay's host name (with tls required, its certificate must match it)
    # The relay's port; TLS is STARTTLS only, so not 465's implicit TLS.
    port: int = Field(default=587, ge=1, le=65535)
    # required: STARTTLS with a certificate valid for `host`, or no delivery.
    tls: TlsMode = "required"
    username: str | None = None  # log in (SMTP AUTH) with these; None: no login
    password: SecretStr | None = None  # the password of that login


class RoutingSettings(BaseModel):
    """MAILSTREAM_ROUTING__EGRESS_POOLS='{"bulk": {"source_addresses": ["192.0.2.10"]}}',
    MAILSTREAM_ROUTING__SMARTHOSTS='{"relay": {"host": "smtp.relay.example", "port": 587}}'.
    Both the router (which picks the route) and the sender (which connects) read them."""

    model_config = ConfigDict(frozen=True)
    # Egress pools by name, as tenants' routes name them.
    egress_pools: dict[str, EgressPool] = Field(default_factory=dict)
    # Smarthosts (relays) by name, as tenants' routes name them.
    smarthosts: dict[str, Smarthost] = Field(default_factory=dict)
    # The pool of tenants and priorities the tenants file routes nowhere (None: no binding).
    default_egress_pool: str | None = None


class RouteSpec(SpecModel):
    """One route of the tenants file: exactly one of egress_pool or smarthost."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    egress_pool: str | None = None
    smarthost: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RouteSpec:
        if (self.egress_pool is None) == (self.smarthost is None):
            raise ValueError("a route names exactly one of egress_pool or smarthost")
        return self


class TenantRouting(SpecModel):
    """The tenants file's `routing:` a route per priority, `default` for the others."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    default: RouteSpec | None = None
    critical: RouteSpec | None = None
    transactional: RouteSpec | None = None
    bulk: RouteSpec | None = None

    def for_priority(self, priority: Priority) -> RouteSpec | None:
        specific: RouteSpec | None = getattr(self, priority.slug)
        return specific or self.default

"""Settings of the sender."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import CommonSettings
from services.common.routing import RoutingSettings
from services.sender.shaping import ProviderClass


class SmtpSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    # 25 in production; the local stack points it at the dev inbox.
    port: int = 25
    helo_name: str = "mailstream.localhost"
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 60.0
    # Shaping classes checked before the built-in ones (services/sender/shaping.py), e.g.
    # MAILSTREAM_SMTP__PROVIDER_CLASSES_EXTRA='[{"name":"slow","pattern":"^mx\\.slow\\.",
    # "connections":2,"messages_per_second":5}]'
    provider_classes_extra: list[ProviderClass] = Field(default_factory=list)
    # The longest a send waits in place for its destination's rate; longer is DEFERRED.
    max_rate_wait_s: float = 2.0
    # MX addresses (per port, verified name and route) whose idle connections are kept for
    # reuse; past it the least recently used one's are closed (with QUIT). Open idle
    # connections are at most this times a provider class's connections, usually far fewer.
    max_idle_pools: int = Field(default=512, ge=1)
    # STARTTLS whenever offered (certificate not checked); see services/sender/tls.py.
    opportunistic_tls: bool = True
    # Recipient domains whose mail goes only over STARTTLS with a verified certificate.
    tls_required_domains: str = ""
    # Extra CA bundle to verify MX certificates with (default: the system's).
    tls_ca_file: str | None = None
    # How often DKIM keys are re-read from the tenants table and key files.
    dkim_refresh_s: float = 30.0


class SenderSettings(CommonSettings):
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)

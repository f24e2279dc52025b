"""Settings of the sender."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import CommonSettings


class SmtpSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    # 25 in production; the local stack points it at the dev inbox.
    port: int = 25
    helo_name: str = "mailstream.localhost"
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 60.0
    # Connections kept open per MX host, and messages sent over one before it is renewed.
    connections_per_host: int = 10
    messages_per_connection: int = 100
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

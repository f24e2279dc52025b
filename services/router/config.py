"""Settings of the router."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import CommonSettings


class DnsSettings(BaseModel):
    model_config = ConfigDict(frozen=True)
    # Empty: the system resolver (/etc/resolv.conf).
    nameservers: str = ""
    port: int = 53
    timeout_s: float = 5.0
    max_cache_ttl_s: int = 3600


class RouterOptions(BaseModel):
    model_config = ConfigDict(frozen=True)
    # Local part of the envelope sender (Return-Path) at the sender's domain.
    return_path_local: str = "bounces"
    # Limits of one template render (each of subject, text and html).
    render_time_limit_ms: int = 200
    render_max_chars: int = 512 * 1024


class RouterSettings(CommonSettings):
    dns: DnsSettings = Field(default_factory=DnsSettings)
    router: RouterOptions = Field(default_factory=RouterOptions)

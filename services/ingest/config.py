"""Settings of the ingest service."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import CommonSettings


class IngestOptions(BaseModel):
    model_config = ConfigDict(frozen=True)
    tenant_cache_s: float = 10.0


class IngestSettings(CommonSettings):
    ingest: IngestOptions = Field(default_factory=IngestOptions)

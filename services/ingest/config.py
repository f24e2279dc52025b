"""Settings of the ingest service."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.common.config import CommonSettings


class IngestOptions(BaseModel):
    model_config = ConfigDict(frozen=True)
    # How long a tenant read from Cassandra is used before it is read again (an unknown one:
    # a second at most), so `tenants apply` takes effect within it.
    tenant_cache_s: float = 10.0
    # Accept the special-use .test domains (RFC 6761); only for local stacks and tests.
    allow_test_domains: bool = False


class IngestSettings(CommonSettings):
    ingest: IngestOptions = Field(default_factory=IngestOptions)

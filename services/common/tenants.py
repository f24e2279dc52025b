"""Tenants: the spec an operator writes (`mailstream tenants apply`), the tenants table that
keeps it, and the services' cached view of it. The one home of all three: the CLI writes
with `TenantTable`, ingest and the router read with `TenantDirectory`, the sender's keyring
with `stored_specs`, and every reader parses the stored JSON with the same `TenantSpec`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from services.common.bounded import MISSING, BoundedMap
from services.common.routing import TenantRouting
from services.common.spec import STORED, SpecModel

if TYPE_CHECKING:
    from services.common.cassandra.session import AsyncSession

# The DKIM algorithms a spec may name (RFC 6376 RSA, RFC 8463 Ed25519); mail.dkim signs them.
DkimAlgorithm = Literal["rsa-sha256", "ed25519-sha256"]
DOMAIN_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class DkimKeyFile(SpecModel):
    """Where a sender domain's DKIM private key is (the sender loads it: mail.dkim.DkimKey)."""

    selector: str
    algorithm: DkimAlgorithm
    private_key_file: str


class SenderDomain(SpecModel):
    domain: str = Field(pattern=DOMAIN_PATTERN)
    dkim: list[DkimKeyFile] = Field(default_factory=list)


class TenantSpec(SpecModel):
    id: str = Field(pattern=TENANT_ID_PATTERN)
    sender_domains: list[SenderDomain]
    limits: dict[str, float] = Field(default_factory=dict)
    # Routes by priority (egress pool or smarthost, defined in MAILSTREAM_ROUTING__*).
    routing: TenantRouting = Field(default_factory=TenantRouting)
    # Envelope sender domain, e.g. bounces.acme.example (default: the From domain).
    return_path_domain: str | None = Field(default=None, pattern=DOMAIN_PATTERN)

    def stored_row(self) -> tuple[frozenset[str], str]:
        """What the tenants table keeps: the sender domains, and the spec as JSON."""
        domains = frozenset(d.domain for d in self.sender_domains)
        return domains, json.dumps(self.model_dump(), sort_keys=True)


def stored_spec(spec_json: str) -> TenantSpec:
    """A spec as the table keeps it (fields a newer CLI added are left out)."""
    return TenantSpec.model_validate_json(spec_json, context=STORED)


@dataclass(frozen=True)
class Tenant:
    """What ingest and the router use of a tenant's spec."""

    tenant_id: str
    sender_domains: frozenset[str]
    # From the tenants file's `limits`, e.g. {"bulk_per_second": 50}.
    limits: dict[str, float] = field(default_factory=dict)
    routing: TenantRouting = field(default_factory=TenantRouting)
    # The envelope sender's domain (bounces come back there); None: the From domain.
    return_path_domain: str | None = None

    @classmethod
    def of(cls, spec: TenantSpec) -> Tenant:
        return cls(
            spec.id,
            frozenset(d.domain.lower() for d in spec.sender_domains),
            dict(spec.limits),
            spec.routing,
            spec.return_path_domain,
        )


# The tenants table. Columns beside the spec: sender_domains (for operators' queries) and
# updated_at. Read at the consistency of every table (cassandra/session.py: default_profile).
_SELECT_ONE = "SELECT tenant_id, sender_domains, spec_json FROM tenants WHERE tenant_id = ?"
_SELECT_ALL = "SELECT tenant_id, sender_domains, spec_json FROM tenants"
_UPSERT = (
    "INSERT INTO tenants (tenant_id, sender_domains, spec_json, updated_at)"
    " VALUES (?, ?, ?, toTimestamp(now()))"
)
_DELETE = "DELETE FROM tenants WHERE tenant_id = ?"


async def stored_specs(session: AsyncSession) -> list[TenantSpec]:
    """Every tenant's spec (the sender's keyring, which needs all sender domains' keys)."""
    return [stored_spec(row.spec_json) for row in await session.execute(_SELECT_ALL)]


class TenantTable:
    """The tenants table as `mailstream tenants` and `templates` use it."""

    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def stored(self) -> dict[str, tuple[frozenset[str], str]]:
        """tenant id -> what the table keeps of it (TenantSpec.stored_row)."""
        return {
            r.tenant_id: (frozenset(r.sender_domains or ()), r.spec_json)
            for r in await self._session.execute(_SELECT_ALL)
        }

    async def put(self, spec: TenantSpec) -> None:
        domains, spec_json = spec.stored_row()
        await self._session.execute(_UPSERT, (spec.id, set(domains), spec_json))

    async def delete(self, tenant_id: str) -> None:
        await self._session.execute(_DELETE, (tenant_id,))


# The longest id or name looked up by key: request fields reach these lookups, and Cassandra
# refuses an empty key or one over 64 KiB (a crash, and a crash loop on the same record).
MAX_KEY_OCTETS = 256


# Tenants cached at once, known or not: tenant ids arrive in requests, so without a bound
# random ones would grow the cache. Past it the least recently seen is read again when next
# needed. A tenant of two sender domains takes about 1.3 kB: some 13 MB at the bound.
MAX_CACHED_TENANTS = 10_000


class TenantDirectory:
    def __init__(
        self,
        *,
        session: AsyncSession,
        ttl_s: float = 10.0,
        max_entries: int = MAX_CACHED_TENANTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._ttl_s = ttl_s
        self._cache: BoundedMap[str, Tenant | None] = BoundedMap(
            max_entries=max_entries, clock=clock
        )

    async def get(self, tenant_id: str) -> Tenant | None:
        if not tenant_id or len(tenant_id.encode("utf-8", "surrogatepass")) > MAX_KEY_OCTETS:
            return None  # no such tenant can exist, and Cassandra refuses such a key
        hit = self._cache.get(tenant_id)
        if hit is not MISSING:
            return hit
        rows = await self._session.execute(_SELECT_ONE, (tenant_id,))
        tenant = Tenant.of(stored_spec(rows[0].spec_json)) if rows else None
        # Unknown tenants are cached for a second only, so a tenant just applied is seen soon.
        ttl_s = self._ttl_s if tenant is not None else min(self._ttl_s, 1.0)
        self._cache.put(tenant_id, tenant, ttl_s=ttl_s)
        return tenant

"""mailstream tenants apply|list: the tenants file is the truth."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.cli.output import table
from services.cli.settings import load
from services.common.cassandra.session import connect
from services.common.errors import ConfigError
from services.common.routing import TenantRouting
from services.sender.dkim import load_key


class DkimKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selector: str
    algorithm: str = Field(pattern="^(rsa-sha256|ed25519-sha256)$")
    private_key_file: str


_DOMAIN = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$"


class SenderDomain(BaseModel):
    model_config = ConfigDict(extra="forbid")
    domain: str = Field(pattern=_DOMAIN)
    dkim: list[DkimKey] = Field(default_factory=list)


class TenantSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    sender_domains: list[SenderDomain]
    limits: dict[str, float] = Field(default_factory=dict)
    # Routes by priority (egress pool or smarthost, defined in MAILSTREAM_ROUTING__*).
    routing: TenantRouting = Field(default_factory=TenantRouting)
    # Envelope sender domain, e.g. bounces.acme.example (default: the From domain).
    return_path_domain: str | None = Field(default=None, pattern=_DOMAIN)


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenants: list[TenantSpec]


def read_tenants_file(path: Path) -> TenantsFile:
    """The validated file, with DKIM key paths made absolute (relative ones are relative to
    the file) and every key parsed once, so a bad key fails here, not at send time."""
    try:
        spec = TenantsFile.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    for tenant in spec.tenants:
        for domain in tenant.sender_domains:
            for key in domain.dkim:
                key_path = (path.parent / key.private_key_file).resolve()
                try:
                    load_key(key_path, selector=key.selector, algorithm=key.algorithm)
                except (OSError, ValueError) as exc:
                    raise ConfigError(
                        f"{path}: tenant {tenant.id}, {domain.domain} selector {key.selector}: "
                        f"unusable DKIM key {key_path}: {type(exc).__name__}: {exc}"
                    ) from None
                key.private_key_file = str(key_path)
    return spec


@click.group(help="Tenants and their verified sender domains.")
def tenants() -> None:
    pass


@tenants.command(help="Make the stored tenants exactly those in FILE (idempotent).")
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path))
def apply(path: Path) -> None:
    spec = read_tenants_file(path)
    settings = load().cassandra
    cluster, session = connect(settings, keyspace=settings.keyspace)
    try:
        existing = {row.tenant_id for row in session.execute("SELECT tenant_id FROM tenants")}
        wanted = {t.id for t in spec.tenants}
        for tenant in spec.tenants:
            session.execute(
                "INSERT INTO tenants (tenant_id, sender_domains, spec_json, updated_at)"
                " VALUES (%s, %s, %s, toTimestamp(now()))",
                (
                    tenant.id,
                    {d.domain for d in tenant.sender_domains},
                    json.dumps(tenant.model_dump(), sort_keys=True),
                ),
            )
            click.echo(f"applied  {tenant.id}")
        for gone in sorted(existing - wanted):
            session.execute("DELETE FROM tenants WHERE tenant_id = %s", (gone,))
            click.echo(f"removed  {gone}")
    finally:
        cluster.shutdown()


@tenants.command(name="list", help="List stored tenants.")
def list_tenants() -> None:
    settings = load().cassandra
    cluster, session = connect(settings, keyspace=settings.keyspace)
    try:
        rows = session.execute("SELECT tenant_id, sender_domains FROM tenants")
        shown = sorted((r.tenant_id, ", ".join(sorted(r.sender_domains or []))) for r in rows)
        table(["TENANT", "SENDER DOMAINS"], shown)
    finally:
        cluster.shutdown()

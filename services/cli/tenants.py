"""mailstream tenants apply|list|dns: the tenants file is the truth for the tenants it names."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

import click
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from services.cli import dns_records
from services.cli.keyspace import keyspace_session
from services.cli.output import table
from services.common.errors import ConfigError
from services.common.lifecycle import validation_problems
from services.common.tenants import TenantSpec, TenantTable
from services.mail.dkim import load_key
from services.router.config import RouterOptions

# What `tenants apply` does to each tenant, one line each.
ADDED, CHANGED, UNCHANGED, REMOVED = "added", "changed", "unchanged", "removed"


class TenantsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenants: list[TenantSpec]


def read_tenants_file(path: Path, *, check_keys: bool = True) -> TenantsFile:
    """The validated file, with DKIM key paths made absolute (relative ones are relative to
    the file) and, with check_keys, every key parsed once, so a bad key fails here, not at
    send time. Without it (keys that live only on the senders' disks) a key the sender
    cannot load defers its domain's mail, DEFERRED dkim_key_unavailable, until it can."""
    try:
        spec = TenantsFile.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_problems(exc)}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    ids = [t.id for t in spec.tenants]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(f"{path}: tenants appear twice: {', '.join(twice)}")
    for tenant in spec.tenants:
        for domain in tenant.sender_domains:
            for key in domain.dkim:
                key_path = (path.parent / key.private_key_file).resolve()
                key.private_key_file = str(key_path)
                if not check_keys:
                    continue
                try:
                    load_key(key_path, selector=key.selector, algorithm=key.algorithm)
                except (OSError, ValueError) as exc:
                    raise ConfigError(
                        f"{path}: tenant {tenant.id}, {domain.domain} selector {key.selector}: "
                        f"unusable DKIM key {key_path}: {type(exc).__name__}: {exc}"
                    ) from None
    return spec


def plan(
    stored: Mapping[str, tuple[frozenset[str], str]], spec: TenantsFile, *, prune: bool
) -> list[tuple[str, str]]:
    """(change, tenant id): the file's tenants in its order, added, changed or unchanged; then
    the stored ones it lacks, removed only with prune (a file may hold just some tenants)."""
    changes = []
    for tenant in spec.tenants:
        row = stored.get(tenant.id)
        change = ADDED if row is None else UNCHANGED if row == tenant.stored_row() else CHANGED
        changes.append((change, tenant.id))
    wanted = {t.id for t in spec.tenants}
    missing = sorted(set(stored) - wanted)
    changes += [(REMOVED if prune else UNCHANGED, gone) for gone in missing]
    return changes


@click.group(help="Tenants and their verified sender domains.")
def tenants() -> None:
    pass


@tenants.command(
    help="Add the tenants in FILE and update those that differ (idempotent); with --prune, "
    "also remove stored tenants FILE lacks."
)
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path))
@click.option("--prune", is_flag=True, help="Remove stored tenants that FILE lacks.")
@click.option("--dry-run", is_flag=True, help="Print the changes; write nothing.")
@click.option(
    "--no-key-check",
    is_flag=True,
    help="Don't load the DKIM keys here (they live on the senders' disks); a sender that "
    "cannot load one defers that domain's mail until it can.",
)
def apply(path: Path, prune: bool, dry_run: bool, no_key_check: bool) -> None:
    spec = read_tenants_file(path, check_keys=not no_key_check)
    by_id = {t.id: t for t in spec.tenants}
    with keyspace_session() as session:
        tenants_table = TenantTable(session=session)
        stored = asyncio.run(tenants_table.stored())
        for change, tenant_id in plan(stored, spec, prune=prune):
            stray = change == UNCHANGED and tenant_id not in by_id
            note = "  (not in the file: --prune removes it)" if stray else ""
            click.echo(f"{change:<9}  {tenant_id}{note}")
            if dry_run:
                continue
            if change in (ADDED, CHANGED):
                asyncio.run(tenants_table.put(by_id[tenant_id]))
            elif change == REMOVED:
                asyncio.run(tenants_table.delete(tenant_id))
    if dry_run:
        click.echo("dry run: nothing written")


@tenants.command(name="list", help="List stored tenants.")
def list_tenants() -> None:
    with keyspace_session() as session:
        stored = asyncio.run(TenantTable(session=session).stored())
        shown = sorted((t, ", ".join(sorted(domains))) for t, (domains, _) in stored.items())
    table(["TENANT", "SENDER DOMAINS"], shown)


@tenants.command(
    help="Print, as zone-file lines, the DNS records the sender domains in FILE need: the DKIM "
    "TXT records of their keys (publish exactly these) and suggested SPF, DMARC and bounce MX "
    "records, plus PTR and A records for each --egress-ip. Reads the key files; no database."
)
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path))
@click.option("--tenant", "tenant_ids", multiple=True, help="Only this tenant (repeatable).")
@click.option(
    "--egress-ip",
    "egress_ips",
    multiple=True,
    help="An address mail leaves from (repeatable): goes into SPF, and gets PTR and A lines.",
)
@click.option("--helo-name", help="The senders' MAILSTREAM_SMTP__HELO_NAME.")
@click.option("--bounce-mx", help="The host that receives mail for the envelope senders.")
@click.option(
    "--return-path-local",
    default=RouterOptions.model_fields["return_path_local"].default,
    show_default=True,
    help="The routers' MAILSTREAM_ROUTER__RETURN_PATH_LOCAL.",
)
def dns(
    path: Path,
    tenant_ids: tuple[str, ...],
    egress_ips: tuple[str, ...],
    helo_name: str | None,
    bounce_mx: str | None,
    return_path_local: str,
) -> None:
    spec = read_tenants_file(path)
    unknown = sorted(set(tenant_ids) - {t.id for t in spec.tenants})
    if unknown:
        raise ConfigError(f"{path}: no tenant {', '.join(unknown)}")
    try:
        egress = dns_records.egress_records(egress_ips, helo_name=helo_name)
    except ValueError as exc:
        raise ConfigError(f"--egress-ip: {exc}") from None
    out = []
    for tenant in spec.tenants:
        if tenant_ids and tenant.id not in tenant_ids:
            continue
        records = dns_records.dkim_records(tenant) + dns_records.suggested_records(
            tenant,
            return_path_local=return_path_local,
            egress_ips=egress_ips,
            bounce_host=bounce_mx,
        )
        out.append(f"; ---- tenant {tenant.id}\n" + dns_records.zone_text(records))
    if egress:
        out.append("; ---- egress IPs (once per deployment)\n" + dns_records.zone_text(egress))
    click.echo("\n".join(out), nl=False)

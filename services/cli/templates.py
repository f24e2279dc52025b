"""mailstream templates apply|list|preview: stored, versioned email templates."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from pathlib import Path

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.cli.keyspace import keyspace_session
from services.cli.output import table
from services.common.avro.records import TemplateRef
from services.common.cassandra.session import AsyncSession
from services.common.errors import ConfigError
from services.common.lifecycle import validation_problems
from services.common.tenants import TenantTable
from services.mail.render import Rendered, RenderError, RenderLimits, check_syntax
from services.mail.templates import (
    LOCALE_PATTERN,
    StoredTemplate,
    TemplateContent,
    TemplateStore,
    TemplateTable,
    canonical_locale,
    render_ref,
)

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_CLAIM_ATTEMPTS = 5


class TemplateSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,127}$")
    locale: str = Field(pattern=LOCALE_PATTERN)
    default_locale: str = Field(pattern=LOCALE_PATTERN)
    required: list[str] = Field(default_factory=list)
    subject: str = Field(min_length=1)
    text: str | None = None
    html: str | None = None

    @model_validator(mode="after")
    def _check(self) -> TemplateSpec:
        if self.text is None and self.html is None:
            raise ValueError("a template needs text, html or both")
        bad = [r for r in self.required if not _matches(_IDENTIFIER, r)]
        if bad:
            raise ValueError(f"required variables must be identifiers: {bad}")
        self.locale = canonical_locale(self.locale)
        self.default_locale = canonical_locale(self.default_locale)
        return self

    @property
    def label(self) -> str:
        return f"{self.tenant}/{self.name} [{self.locale}]"

    def content(self) -> TemplateContent:
        return TemplateContent(
            locale=self.locale,
            subject=self.subject,
            text=self.text,
            html=self.html,
            required=tuple(self.required),
        )

    @property
    def content_hash(self) -> str:
        return self.content().content_hash


class TemplatesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    templates: list[TemplateSpec]


def _matches(pattern: str, value: str) -> bool:
    return re.match(pattern, value) is not None


def read_templates_file(path: Path) -> TemplatesFile:
    """The validated file: every part compiles, one entry per (tenant, name, locale), and the
    entries of one template agree on its default locale."""
    try:
        spec = TemplatesFile.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_problems(exc)}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    seen: dict[tuple[str, str], str] = {}
    labels: set[str] = set()
    for t in spec.templates:
        if t.label in labels:
            raise ConfigError(f"{path}: {t.label} appears twice")
        labels.add(t.label)
        default = seen.setdefault((t.tenant, t.name), t.default_locale)
        if default != t.default_locale:
            raise ConfigError(f"{path}: {t.tenant}/{t.name}: entries disagree on default_locale")
        for part, source in (("subject", t.subject), ("text", t.text), ("html", t.html)):
            if source is None:
                continue
            try:
                check_syntax(source, html=part == "html")
            except RenderError as exc:
                raise ConfigError(f"{path}: {t.label} {part}: {exc.message}") from None
    return spec


def _grouped(spec: TemplatesFile) -> dict[tuple[str, str], list[TemplateSpec]]:
    groups: dict[tuple[str, str], list[TemplateSpec]] = defaultdict(list)
    for t in spec.templates:
        groups[(t.tenant, t.name)].append(t)
    return groups


async def _apply_one(
    templates_table: TemplateTable, tenant: str, name: str, entries: list[TemplateSpec]
) -> None:
    default_locale = entries[0].default_locale
    for _ in range(_CLAIM_ATTEMPTS):
        head, stored = await templates_table.current(tenant, name)
        changed = [e for e in entries if stored.get(e.locale, (0, ""))[1] != e.content_hash]
        locales = set(stored) | {e.locale for e in entries}
        if default_locale not in locales:
            raise ConfigError(
                f"{tenant}/{name}: default_locale {default_locale} has no template in the file"
                " or in the store"
            )
        if not changed and head is not None and head.default_locale == default_locale:
            for e in entries:
                click.echo(f"unchanged v{stored[e.locale][0]}  {e.label}")
            return
        version = (head.version if head is not None else 0) + 1
        # Claim the version first: a concurrent apply that lost the race re-reads and retries,
        # so two applies never write content under the same version number.
        claimed = await templates_table.claim(
            tenant,
            name,
            version=version,
            default_locale=default_locale,
            locales=locales,
            changed={e.locale for e in changed},
        )
        if not claimed:
            continue
        for e in changed:
            await templates_table.put(
                tenant, name, version=version, default_locale=default_locale, c=e.content()
            )
        for e in entries:
            if e in changed:
                click.echo(f"created v{version}  {e.label}")
            else:
                click.echo(f"unchanged v{stored[e.locale][0]}  {e.label}")
        if not changed:
            click.echo(f"created v{version}  {tenant}/{name}: default_locale {default_locale}")
        return
    raise ConfigError(f"{tenant}/{name}: could not claim a new version; concurrent applies?")


async def _preview(
    store: TemplateStore, tenant: str, ref: TemplateRef, data_json: str
) -> tuple[StoredTemplate, Rendered]:
    rendered = await render_ref(store, tenant, ref, data_json, RenderLimits())
    resolved = await store.resolve(tenant_id=tenant, ref=ref)  # cached by render_ref
    assert resolved is not None
    return resolved, rendered


@click.group(help="Stored email templates: versioned, per locale.")
def templates() -> None:
    pass


@templates.command(help="Store the templates in FILE; a changed body makes a new version.")
@click.option("-f", "--file", "path", required=True, type=click.Path(path_type=Path))
def apply(path: Path) -> None:
    spec = read_templates_file(path)
    with keyspace_session() as session:
        asyncio.run(_apply(session, path, spec))


async def _apply(session: AsyncSession, path: Path, spec: TemplatesFile) -> None:
    known = set(await TenantTable(session=session).stored())
    unknown = sorted({t.tenant for t in spec.templates} - known)
    if unknown:
        raise ConfigError(f"{path}: unknown tenants: {', '.join(unknown)}")
    templates_table = TemplateTable(session=session)
    for (tenant, name), entries in _grouped(spec).items():
        await _apply_one(templates_table, tenant, name, entries)


@templates.command(name="list", help="List stored templates and their latest versions.")
@click.option("--tenant", help="Only this tenant's templates.")
def list_templates(tenant: str | None) -> None:
    with keyspace_session() as session:
        shown = asyncio.run(_listed(TemplateTable(session=session), tenant))
    table(["TENANT", "NAME", "LOCALE", "LATEST", "DEFAULT"], shown, right=["LATEST"])


async def _listed(templates_table: TemplateTable, tenant: str | None) -> list[tuple[str, ...]]:
    heads = sorted(
        (row for row in await templates_table.heads() if tenant is None or row.tenant_id == tenant),
        key=lambda r: (r.tenant_id, r.name),
    )
    shown: list[tuple[str, ...]] = []
    for head in heads:
        _, stored = await templates_table.current(head.tenant_id, head.name)
        for locale in sorted(stored):
            latest = f"v{stored[locale][0]}"
            shown.append((head.tenant_id, head.name, locale, latest, head.default_locale))
    return shown


@templates.command(help="Render template NAME with sample data; print it, save the HTML part.")
@click.argument("name")
@click.option("--tenant", required=True)
@click.option("--version", type=int, help="A pinned version (default: the latest).")
@click.option("--locale", help="The wanted locale (falls back to its language, then default).")
@click.option("--data", "data_json", default="{}", show_default=True, help="A JSON object.")
@click.option("--html-out", type=click.Path(path_type=Path), help="Write the HTML part here.")
def preview(
    name: str,
    tenant: str,
    version: int | None,
    locale: str | None,
    data_json: str,
    html_out: Path | None,
) -> None:
    with keyspace_session() as session:
        store = TemplateStore(session=session)
        ref = TemplateRef(name=name, version=version, locale=locale)
        try:
            resolved, rendered = asyncio.run(_preview(store, tenant, ref, data_json))
        except RenderError as exc:
            raise click.ClickException(f"{exc.reason}: {exc.message}") from None
    click.echo(f"template: {tenant}/{name} v{resolved.version} locale {resolved.locale}")
    click.echo(f"subject:  {rendered.subject}")
    if rendered.text is not None:
        click.echo("--- text ---")
        click.echo(rendered.text)
    if rendered.html is not None:
        if html_out is not None:
            html_out.write_text(rendered.html)
            click.echo(f"--- html: {len(rendered.html)} characters written to {html_out} ---")
        else:
            click.echo("--- html ---")
            click.echo(rendered.html)

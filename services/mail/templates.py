"""Stored templates: versions, locale fallback and a small TTL cache over Cassandra."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.avro.records import TemplateRef
from services.common.bounded import MISSING, BoundedMap
from services.common.cassandra.session import AsyncSession
from services.common.reasons import Reason
from services.common.tenants import MAX_KEY_OCTETS
from services.mail.render import (
    Rendered,
    RenderError,
    RenderLimits,
    render,
)

LOCALE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"

_HEAD_LATEST = (
    "SELECT version, default_locale FROM template_versions WHERE tenant_id = ? AND name = ? LIMIT 1"
)
_HEAD_AT = (
    "SELECT version, default_locale FROM template_versions"
    " WHERE tenant_id = ? AND name = ? AND version = ?"
)
_BODY = (
    "SELECT version, subject, text_body, html_body, required, content_hash FROM templates"
    " WHERE tenant_id = ? AND name = ? AND locale = ? AND version <= ? LIMIT 1"
)


@dataclass(frozen=True, slots=True)
class StoredTemplate:
    tenant_id: str
    name: str
    version: int  # the template version resolved (latest, or the one asked for)
    locale: str  # the locale actually used, after fallback
    default_locale: str
    subject: str
    text: str | None
    html: str | None
    required: tuple[str, ...]
    content_hash: str
    content_version: int  # the version at which this locale's content was stored


def canonical_locale(locale: str) -> str:
    """`pt_br` and `PT-br` become `pt-BR`; a script subtag is title case (`zh-Hant`)."""
    parts = re.split(r"[-_]", locale.strip())
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 2 or part.isdigit():
            out.append(part.upper())
        elif len(part) == 4:
            out.append(part.title())
        else:
            out.append(part.lower())
    return "-".join(out)


def locale_candidates(requested: str | None, default_locale: str) -> list[str]:
    """The locales to try, in order: exact (`pt-BR`), its language (`pt`), the default."""
    candidates: list[str] = []
    if requested and re.match(LOCALE_PATTERN, requested.strip()):
        exact = canonical_locale(requested)
        candidates.append(exact)
        language = exact.split("-")[0]
        if language != exact:
            candidates.append(language)
    default = canonical_locale(default_locale)
    if default not in candidates:
        candidates.append(default)
    return candidates


def content_hash(
    *, subject: str, text: str | None, html: str | None, required: Sequence[str]
) -> str:
    body = {"subject": subject, "text": text, "html": html, "required": sorted(required)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# Written by `mailstream templates apply` (TemplateTable), one version claimed at a time.
_HEAD = (
    "SELECT version, default_locale, locales FROM template_versions"
    " WHERE tenant_id = ? AND name = ? LIMIT 1"
)
_HEADS = (
    "SELECT tenant_id, name, version, default_locale FROM template_versions PER PARTITION LIMIT 1"
)
_CONTENTS = "SELECT locale, version, content_hash FROM templates WHERE tenant_id = ? AND name = ?"
_CLAIM = (
    "INSERT INTO template_versions (tenant_id, name, version, default_locale, locales,"
    " changed, created_at) VALUES (?, ?, ?, ?, ?, ?, toTimestamp(now())) IF NOT EXISTS"
)
_PUT = (
    "INSERT INTO templates (tenant_id, name, locale, version, subject, text_body,"
    " html_body, required, default_locale, content_hash, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, toTimestamp(now()))"
)


@dataclass(frozen=True)
class TemplateContent:
    """One locale of a template as the operator's file gives it."""

    locale: str
    subject: str
    text: str | None
    html: str | None
    required: tuple[str, ...]

    @property
    def content_hash(self) -> str:
        return content_hash(
            subject=self.subject, text=self.text, html=self.html, required=self.required
        )


class TemplateTable:
    """The template tables as `mailstream templates` writes and lists them."""

    def __init__(self, *, session: AsyncSession) -> None:
        self._session = session

    async def current(self, tenant_id: str, name: str) -> tuple[Any, dict[str, tuple[int, str]]]:
        """The latest version row (or None) and, per locale, its newest (version, content hash)."""
        heads = await self._session.execute(_HEAD, (tenant_id, name))
        stored: dict[str, tuple[int, str]] = {}
        for row in await self._session.execute(_CONTENTS, (tenant_id, name)):
            stored.setdefault(row.locale, (row.version, row.content_hash))
        return (heads[0] if heads else None), stored

    async def heads(self) -> list[Any]:
        """Every template's latest version row (tenant_id, name, version, default_locale)."""
        return await self._session.execute(_HEADS)

    async def claim(
        self,
        tenant_id: str,
        name: str,
        *,
        version: int,
        default_locale: str,
        locales: set[str],
        changed: set[str],
    ) -> bool:
        """Claims the version number (an LWT); False when a concurrent apply took it."""
        rows = await self._session.execute(
            _CLAIM, (tenant_id, name, version, default_locale, locales, changed)
        )
        return bool(rows and rows[0].applied)

    async def put(
        self, tenant_id: str, name: str, *, version: int, default_locale: str, c: TemplateContent
    ) -> None:
        await self._session.execute(
            _PUT,
            (
                tenant_id,
                name,
                c.locale,
                version,
                c.subject,
                c.text,
                c.html,
                list(c.required),
                default_locale,
                c.content_hash,
            ),
        )


_Key = tuple[str, str, int | None, str | None]


class TemplateStore:
    """Resolves a TemplateRef. A pinned version is immutable, so it is cached for long; a
    "latest" lookup only briefly, so a newly applied version is picked up within seconds."""

    def __init__(
        self,
        *,
        session: AsyncSession,
        latest_ttl_s: float = 5.0,
        pinned_ttl_s: float = 600.0,
        missing_ttl_s: float = 5.0,
        max_entries: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self._latest_ttl = latest_ttl_s
        self._pinned_ttl = pinned_ttl_s
        self._missing_ttl = missing_ttl_s
        self._cache: BoundedMap[_Key, StoredTemplate | None] = BoundedMap(
            max_entries=max_entries, clock=monotonic
        )

    async def resolve(self, *, tenant_id: str, ref: TemplateRef) -> StoredTemplate | None:
        if (
            any(
                len(part.encode("utf-8", "surrogatepass")) > MAX_KEY_OCTETS
                for part in (tenant_id, ref.name, ref.locale or "")
            )
            or not ref.name
        ):
            return None  # template_not_found: no template has such a key
        key: _Key = (tenant_id, ref.name, ref.version, ref.locale)
        hit = self._cache.get(key)
        if hit is not MISSING:
            return hit
        found = await self._load(tenant_id, ref)
        if found is None:
            ttl = self._missing_ttl
        else:
            ttl = self._latest_ttl if ref.version is None else self._pinned_ttl
        self._cache.put(key, found, ttl_s=ttl)
        return found

    async def _load(self, tenant_id: str, ref: TemplateRef) -> StoredTemplate | None:
        if ref.version is None:
            heads = await self._session.execute(_HEAD_LATEST, (tenant_id, ref.name))
        else:
            heads = await self._session.execute(_HEAD_AT, (tenant_id, ref.name, ref.version))
        if not heads:
            return None
        head = heads[0]
        for locale in locale_candidates(ref.locale, head.default_locale):
            rows = await self._session.execute(_BODY, (tenant_id, ref.name, locale, head.version))
            if rows:
                return _stored(tenant_id, ref.name, head, locale, rows[0])
        return None


def _stored(tenant_id: str, name: str, head: Any, locale: str, row: Any) -> StoredTemplate:
    return StoredTemplate(
        tenant_id=tenant_id,
        name=name,
        version=head.version,
        locale=locale,
        default_locale=head.default_locale,
        subject=row.subject or "",
        text=row.text_body,
        html=row.html_body,
        required=tuple(row.required or ()),
        content_hash=row.content_hash,
        content_version=row.version,
    )


async def render_ref(
    store: TemplateStore,
    tenant_id: str,
    ref: TemplateRef,
    data_json: str | None,
    limits: RenderLimits,
) -> Rendered:
    """Resolves and renders; a template that does not exist is RenderError(template_not_found).
    A Cassandra outage is a TransientError, not a render result."""
    template = await store.resolve(tenant_id=tenant_id, ref=ref)
    if template is None:
        wanted = f"{ref.name} v{ref.version}" if ref.version is not None else ref.name
        raise RenderError(Reason.TEMPLATE_NOT_FOUND, f"no template {wanted} for tenant {tenant_id}")
    return render(template, data_json, limits=limits)

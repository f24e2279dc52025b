"""The DKIM keys of every tenant's sender domains, from the tenants table and the key files."""

from __future__ import annotations

import time
from pathlib import Path

from services.common.cassandra.session import AsyncSession
from services.common.logging import get_logger
from services.common.metrics import DKIM_KEYS_UNUSABLE
from services.common.tenants import DkimKeyFile, TenantSpec, stored_specs
from services.mail.dkim import DkimKey, DkimSigner, load_key

log = get_logger(__name__)

# How soon a domain the keyring has no good answer for (unknown: a tenant added since the
# last refresh; or with a key that failed to load) makes it read the specs and files again.
_RECHECK_S = 1.0


class DkimKeyring:
    """Builds a DkimSigner from the stored tenant specs, again every refresh_s seconds.
    A key file is parsed once per (path, mtime); a key that cannot be loaded is logged by
    path and left out, never its content. Parsed keys the latest specs no longer name (a
    rotated file, a removed tenant) are dropped at each refresh, so they are bounded by the
    keys configured now, not by every key file version seen since the start.

    Mail is never sent unsigned by accident: a domain whose configured keys do not all load,
    or that no spec names (a tenant applied since the last refresh), is checked again within
    a second, and `unusable` says why its mail must wait meanwhile."""

    def __init__(self, *, session: AsyncSession, refresh_s: float = 30.0) -> None:
        self._session = session
        self._refresh_s = refresh_s
        self._signer = DkimSigner(keys={})
        self._loaded_at = float("-inf")
        self._parsed: dict[tuple[str, float, str, str], DkimKey] = {}
        self._domains: set[str] = set()  # every sender domain the specs name
        self._unusable: dict[str, list[str]] = {}  # domain -> selectors whose key failed

    async def signer(self, domain: str | None = None) -> DkimSigner:
        age = time.monotonic() - self._loaded_at
        doubtful = domain is not None and self.unusable(domain) is not None
        if age >= self._refresh_s or (doubtful and age >= _RECHECK_S):
            self._signer = DkimSigner(keys=self._keys(await stored_specs(self._session)))
            self._loaded_at = time.monotonic()
        return self._signer

    def unusable(self, domain: str) -> str | None:
        """Why mail from `domain` cannot be signed as configured now, or None if it can (with
        its keys, or unsigned where its tenant configures none)."""
        domain = domain.lower()
        if domain not in self._domains:
            return f"no tenant names the sender domain {domain}"
        failed = self._unusable.get(domain)
        return f"DKIM keys of {domain} not loaded: {', '.join(failed)}" if failed else None

    def _keys(self, specs: list[TenantSpec]) -> dict[str, list[DkimKey]]:
        keys: dict[str, list[DkimKey]] = {}
        parsed: dict[tuple[str, float, str, str], DkimKey] = {}
        domains: set[str] = set()
        unusable: dict[str, list[str]] = {}
        for spec in specs:
            for domain in spec.sender_domains:
                name = domain.domain.lower()
                domains.add(name)
                for entry in domain.dkim:
                    key = self._load(entry, parsed)
                    if key is not None:
                        keys.setdefault(name, []).append(key)
                    else:
                        unusable.setdefault(name, []).append(entry.selector)
        self._parsed = parsed
        for gone in set(self._unusable) - set(unusable):
            DKIM_KEYS_UNUSABLE.labels(gone).set(0)
        for name, selectors in unusable.items():
            DKIM_KEYS_UNUSABLE.labels(name).set(len(selectors))
        self._domains, self._unusable = domains, unusable
        return keys

    def _load(
        self, entry: DkimKeyFile, parsed: dict[tuple[str, float, str, str], DkimKey]
    ) -> DkimKey | None:
        """The entry's key, from this refresh's keys, else the last one's, else the file."""
        path = Path(entry.private_key_file)
        try:
            cache_key = (str(path), path.stat().st_mtime, entry.selector, entry.algorithm)
            key = parsed.get(cache_key)
            if key is None:
                key = self._parsed.get(cache_key)
            if key is None:
                key = load_key(path, selector=entry.selector, algorithm=entry.algorithm)
            parsed[cache_key] = key
            return key
        except (OSError, ValueError) as exc:
            log.error(
                "dkim_key_unusable",
                path=str(path),
                selector=entry.selector,
                error_class=type(exc).__name__,
            )
            return None

"""The DKIM keys of every tenant's sender domains, from the tenants table and the key files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from services.common.cassandra.session import AsyncSession
from services.common.logging import get_logger
from services.sender.dkim import DkimKey, DkimSigner, load_key

log = get_logger(__name__)


class DkimKeyring:
    """Builds a DkimSigner from the stored tenant specs, again every refresh_s seconds.
    A key file is parsed once per (path, mtime); a key that cannot be loaded is logged by
    path and left out, never its content. Parsed keys the latest specs no longer name (a
    rotated file, a removed tenant) are dropped at each refresh, so they are bounded by the
    keys configured now, not by every key file version seen since the start."""

    def __init__(self, *, session: AsyncSession, refresh_s: float = 30.0) -> None:
        self._session = session
        self._refresh_s = refresh_s
        self._signer = DkimSigner(keys={})
        self._loaded_at = float("-inf")
        self._parsed: dict[tuple[str, float, str, str], DkimKey] = {}

    async def signer(self) -> DkimSigner:
        if time.monotonic() - self._loaded_at >= self._refresh_s:
            rows = await self._session.execute("SELECT spec_json FROM tenants")
            self._signer = DkimSigner(keys=self._keys([row.spec_json for row in rows]))
            self._loaded_at = time.monotonic()
        return self._signer

    def _keys(self, specs: list[str | None]) -> dict[str, list[DkimKey]]:
        keys: dict[str, list[DkimKey]] = {}
        parsed: dict[tuple[str, float, str, str], DkimKey] = {}
        for spec in specs:
            for domain in json.loads(spec or "{}").get("sender_domains", []):
                for entry in domain.get("dkim", []):
                    key = self._load(entry, parsed)
                    if key is not None:
                        keys.setdefault(domain["domain"].lower(), []).append(key)
        self._parsed = parsed
        return keys

    def _load(
        self, entry: dict[str, str], parsed: dict[tuple[str, float, str, str], DkimKey]
    ) -> DkimKey | None:
        """The entry's key, from this refresh's keys, else the last one's, else the file."""
        path = Path(entry["private_key_file"])
        try:
            cache_key = (str(path), path.stat().st_mtime, entry["selector"], entry["algorithm"])
            key = parsed.get(cache_key)
            if key is None:
                key = self._parsed.get(cache_key)
            if key is None:
                key = load_key(path, selector=entry["selector"], algorithm=entry["algorithm"])
            parsed[cache_key] = key
            return key
        except (OSError, ValueError) as exc:
            log.error(
                "dkim_key_unusable",
                path=str(path),
                selector=entry.get("selector"),
                error_class=type(exc).__name__,
            )
            return None

"""Which TLS each destination gets, and the SSL contexts for it."""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsPolicy:  # not slots: cached_property needs __dict__
    """Opportunistic STARTTLS everywhere (encrypt when offered, certificate not checked, as
    Postfix's `may`), and `required` for listed recipient domains: STARTTLS must be offered
    and the certificate must verify for the MX host name, or the attempt is deferred."""

    required_domains: frozenset[str]
    opportunistic: bool = True
    ca_file: str | None = None

    @classmethod
    def parse(cls, *, required_domains: str, opportunistic: bool, ca_file: str | None) -> TlsPolicy:
        domains = frozenset(d.strip().lower() for d in required_domains.split(",") if d.strip())
        return cls(required_domains=domains, opportunistic=opportunistic, ca_file=ca_file)

    def required_for(self, recipient_domain: str) -> bool:
        return recipient_domain.lower() in self.required_domains

    @functools.cached_property
    def verifying_context(self) -> ssl.SSLContext:
        """Built once: loading the CA store for every connection costs tens of ms."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    @functools.cached_property
    def opportunistic_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

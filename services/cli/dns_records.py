"""The DNS records a tenant's sender domains need, as zone-file lines: the DKIM keys' TXT
records to publish, and suggested SPF, DMARC, MX, PTR and A records around them."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from services.mail.dkim import load_key

if TYPE_CHECKING:
    from services.common.tenants import TenantSpec

TXT_CHUNK = 255  # RFC 1035: one character-string of a TXT record holds at most 255 octets
# Stand-ins for what only the deployment knows, when the command is not told.
EGRESS_IP = "EGRESS-IP"
BOUNCE_HOST = "BOUNCE-MX-HOST"
HELO_HOST = "HELO-NAME"


def txt_strings(value: str) -> list[str]:
    """A TXT value as the character-strings of one record, each at most 255 octets."""
    return [value[i : i + TXT_CHUNK] for i in range(0, len(value), TXT_CHUNK)] or [""]


def txt_rdata(value: str) -> str:
    """The value as a zone file writes it: quoted strings, one record."""
    return " ".join(f'"{s}"' for s in txt_strings(value))


@dataclass(frozen=True)
class Record:
    name: str  # fully qualified, without the trailing dot
    type: str
    rdata: str  # as a zone file writes it
    comment: str
    suggested: bool  # True: a starting point to adapt; False: publish exactly this

    def zone_lines(self) -> list[str]:
        mark = "suggested: " if self.suggested else ""
        return [f"; {mark}{self.comment}", f"{self.name}. {self.type} {self.rdata}"]


def dkim_records(tenant: TenantSpec) -> list[Record]:
    """One TXT per DKIM key of every sender domain, from the private key files."""
    records = []
    for domain in tenant.sender_domains:
        for key in domain.dkim:
            parsed = load_key(
                Path(key.private_key_file), selector=key.selector, algorithm=key.algorithm
            )
            records.append(
                Record(
                    name=f"{key.selector}._domainkey.{domain.domain}",
                    type="TXT",
                    rdata=txt_rdata(parsed.dns_txt_record()),
                    comment=f"DKIM {key.algorithm} key of {domain.domain}, selector {key.selector}",
                    suggested=False,
                )
            )
    return records


def _spf_mechanisms(egress_ips: Sequence[str]) -> str:
    if not egress_ips:
        return f"ip4:{EGRESS_IP}"
    addresses = [ipaddress.ip_address(a) for a in egress_ips]
    return " ".join(f"ip{a.version}:{a}" for a in addresses)


def _aligned(envelope: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment where the one domain is, or is under, the other. Domains under a
    common parent (a.example and b.example) may align too: that needs the public suffix list."""
    return envelope == from_domain or (
        envelope.endswith("." + from_domain) or from_domain.endswith("." + envelope)
    )


def suggested_records(
    tenant: TenantSpec,
    *,
    return_path_local: str,
    egress_ips: Sequence[str] = (),
    bounce_host: str | None = None,
) -> list[Record]:
    """DMARC for every sender domain; SPF and MX for each envelope sender domain."""
    records = []
    envelopes: dict[str, list[str]] = {}
    for domain in tenant.sender_domains:
        envelope = tenant.return_path_domain or domain.domain
        envelopes.setdefault(envelope, []).append(domain.domain)
        alignment = (
            "SPF and DKIM both align"
            if _aligned(envelope, domain.domain)
            else f"DKIM aligns; SPF of {envelope} aligns only if it shares {domain.domain}'s"
            " organizational domain"
        )
        records.append(
            Record(
                name=f"_dmarc.{domain.domain}",
                type="TXT",
                rdata=txt_rdata(f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain.domain}"),
                comment=f"DMARC for {domain.domain}; start at p=none, read the reports, then"
                f" move to quarantine or reject ({alignment})",
                suggested=True,
            )
        )
    for envelope, domains in envelopes.items():
        mail_from = f"{return_path_local}@{envelope}"
        records.append(
            Record(
                name=envelope,
                type="TXT",
                rdata=txt_rdata(f"v=spf1 {_spf_mechanisms(egress_ips)} -all"),
                comment=f"SPF of the envelope sender {mail_from} (mail of {', '.join(domains)}):"
                " every egress IP, or the smarthost's include:, and merged into any SPF"
                " record the name already has (one per name)",
                suggested=True,
            )
        )
        records.append(
            Record(
                name=envelope,
                type="MX",
                rdata=f"10 {bounce_host or BOUNCE_HOST}.",
                comment=(
                    f"where bounces to {mail_from} arrive: a host that accepts mail for it"
                    if envelope not in domains
                    else f"{envelope} is also the From domain: keep the MX it has and have it"
                    f" accept {mail_from}, or give the tenant a return_path_domain such as"
                    f" bounces.{envelope} with an MX of its own"
                ),
                suggested=True,
            )
        )
    return records


def egress_records(egress_ips: Sequence[str], *, helo_name: str | None) -> list[Record]:
    """Forward-confirmed reverse DNS for each egress IP: PTR to the HELO name and back."""
    helo = helo_name or HELO_HOST
    records = []
    for text in egress_ips:
        address = ipaddress.ip_address(text)
        records.append(
            Record(
                name=address.reverse_pointer,
                type="PTR",
                rdata=f"{helo}.",
                comment=f"reverse DNS of egress IP {address}, set by whoever owns the address",
                suggested=True,
            )
        )
        records.append(
            Record(
                name=helo,
                type="A" if address.version == 4 else "AAAA",
                rdata=str(address),
                comment=f"the HELO name (MAILSTREAM_SMTP__HELO_NAME) resolves back to {address}",
                suggested=True,
            )
        )
    if egress_ips:
        records.append(
            Record(
                name=helo,
                type="TXT",
                rdata=txt_rdata(f"v=spf1 {_spf_mechanisms(egress_ips)} -all"),
                comment="SPF of the HELO name, which receivers may check too",
                suggested=True,
            )
        )
    return records


def zone_text(records: Sequence[Record]) -> str:
    return "\n".join(line for r in records for line in r.zone_lines()) + "\n"

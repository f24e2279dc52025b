"""The one address validation every service shares: what ingest accepts, the router names in
headers and the sender puts in RCPT TO is exactly this normalized form."""

from __future__ import annotations

import functools
import re

from email_validator import EmailNotValidError, validate_email

from services.common.header_text import unsafe_text

MAX_ADDRESS = 254  # RFC 5321 path limit, less the angle brackets
MAX_LOCAL_OCTETS = 64  # RFC 5321 4.5.3.1.1; email-validator leaves it unchecked
# Bidi controls and zero-width characters have no place in an address.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def normalize_address(address: str, *, allow_test_domains: bool = False) -> str | None:
    """The validated, normalized address, or None. Exactly this string is later sent.
    allow_test_domains admits the special-use .test names the local and test stacks use."""
    if not address or len(address) > 4 * MAX_ADDRESS:
        # Before any parser sees it, and before the cache keeps it as a key: nothing that
        # long can be valid, and 4,096 keys of a request's size each would be gigabytes.
        return None
    return _normalized(address, allow_test_domains)


# A pure function of its arguments, at 25-37 us a call, and the From address of a tenant's
# mail is the same on every message (the recipients churn the rest of the cache).
@functools.lru_cache(maxsize=4096)
def _normalized(address: str, allow_test_domains: bool) -> str | None:
    if _INVISIBLE.search(address) or unsafe_text(address):
        return None
    try:
        result = validate_email(
            address,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            test_environment=allow_test_domains,
        )
    except EmailNotValidError:
        return None
    normalized = str(result.normalized)
    local = normalized.rsplit("@", 1)[0]
    if len(local.encode("utf-8")) > MAX_LOCAL_OCTETS:
        return None
    return normalized

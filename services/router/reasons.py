"""Reason codes raised by the router."""

from __future__ import annotations

NO_SUCH_DOMAIN = "no_such_domain"
NULL_MX = "null_mx"
NO_MX = "no_mx"
DNS_TEMPORARY_FAILURE = "dns_temporary_failure"

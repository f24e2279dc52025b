"""Reason codes raised by the router."""

from __future__ import annotations

NO_SUCH_DOMAIN = "no_such_domain"
NULL_MX = "null_mx"
NO_MX = "no_mx"
DNS_TEMPORARY_FAILURE = "dns_temporary_failure"
# The tenant's route names an egress pool or smarthost this deployment does not define.
ROUTE_UNAVAILABLE = "route_unavailable"
# The domain's MTA-STS policy enforces and none of its MX hosts matches the policy.
MTA_STS_MX_MISMATCH = "mta_sts_mx_mismatch"
# The built message (templates rendered, attachments encoded) exceeds the router's limit.
MESSAGE_TOO_LARGE = "message_too_large"

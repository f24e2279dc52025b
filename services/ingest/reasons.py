"""Stable snake_case reason codes of REJECTED events raised by ingest (documented in README)."""

from __future__ import annotations

MESSAGE_ID_INVALID = "message_id_invalid"
TENANT_UNKNOWN = "tenant_unknown"
SENDER_INVALID = "sender_invalid"
SENDER_NOT_PERMITTED = "sender_not_permitted"
RECIPIENTS_MISSING = "recipients_missing"
RECIPIENTS_TOO_MANY = "recipients_too_many"
RECIPIENT_INVALID = "recipient_invalid"
CONTENT_MISSING = "content_missing"
LIST_UNSUBSCRIBE_MISSING = "list_unsubscribe_missing"
HEADER_NOT_ALLOWED = "header_not_allowed"
HEADER_VALUE_INVALID = "header_value_invalid"
REQUEST_TOO_LARGE = "request_too_large"
EXPIRED = "expired"
SUPPRESSED = "suppressed"

"""Every reason code mailstream emits or stores, defined once, each with what it means."""

from __future__ import annotations

import enum

from services.common.avro.records import EventType
from services.common.reasons.info import (
    FIX_NEW_ID,
    SMTP,
    ReasonInfo,
    Service,
    Suppresses,
    deferred,
    entry,
    expired,
    no_route,
    rejected,
    smtp,
)

_I, _R, _S = Service.INGEST, Service.ROUTER, Service.SENDER


class Reason(enum.StrEnum):
    """A reason code: the `reason` of an EmailEvent, or of a suppression. The values are
    public contract strings: never rename one."""

    info: ReasonInfo

    # info is optional only to the type checker, for Reason("quota"), a lookup by value.
    def __new__(cls, value: str, info: ReasonInfo | None = None) -> Reason:
        if info is None:
            raise TypeError(f"reason {value!r} is defined without its ReasonInfo")
        member = str.__new__(cls, value)
        member._value_ = value
        member.info = info
        return member

    # ingest: the request as a whole, or one recipient, fails validation
    MESSAGE_ID_INVALID = (
        "message_id_invalid",
        rejected("The message_id is not 1 to 128 printable ASCII characters."),
    )
    TIMESTAMP_INVALID = (
        "timestamp_invalid",
        rejected(
            "requested_at, send_at or expires_at is not epoch milliseconds from 1970 to 9999."
        ),
    )
    TENANT_UNKNOWN = (
        "tenant_unknown",
        rejected(
            "No tenant of that id is configured.", "Use a configured tenant id, or have it added."
        ),
    )
    SENDER_INVALID = "sender_invalid", rejected("from_address or reply_to is not an address.")
    SENDER_NOT_PERMITTED = (
        "sender_not_permitted",
        rejected(
            "The from_address domain is not one of the tenant's sender domains.",
            "Send from a verified sender domain of the tenant, or have the domain added.",
        ),
    )
    RECIPIENTS_MISSING = "recipients_missing", rejected("The to list is empty.")
    RECIPIENTS_TOO_MANY = (
        "recipients_too_many",
        rejected(
            "Over 50 To, or over 100 To, Cc and Bcc together.",
            "Split the recipients over several messages.",
        ),
    )
    RECIPIENT_INVALID = (
        "recipient_invalid",
        rejected(
            "This recipient is not a valid address; the others go on.",
            "Correct the address and send to it under a new message_id; the others were accepted.",
        ),
    )
    CONTENT_MISSING = "content_missing", rejected("No template, text_body or html_body.")
    LIST_UNSUBSCRIBE_MISSING = (
        "list_unsubscribe_missing",
        rejected(
            "Bulk mail without a List-Unsubscribe header.", "Add List-Unsubscribe and send again."
        ),
    )
    HEADER_NOT_ALLOWED = (
        "header_not_allowed",
        rejected(
            "A header other than X-*, List-Unsubscribe or List-Unsubscribe-Post, or a bad name."
        ),
    )
    HEADER_VALUE_INVALID = (
        "header_value_invalid",
        rejected("A header value (or from_name) holds a line break or control character."),
    )
    ATTACHMENT_INVALID = (
        "attachment_invalid",
        rejected("An attachment's filename or content_type is not acceptable (see README)."),
    )
    ATTACHMENTS_TOO_MANY = "attachments_too_many", rejected("Over 20 attachments.")
    ATTACHMENTS_TOO_LARGE = (
        "attachments_too_large",
        rejected("Over 4 MiB of attachment content.", "Send less content, or link to it instead."),
    )
    TAG_INVALID = (
        "tag_invalid",
        rejected(
            "A tag key is not 1 to 64 of A-Z a-z 0-9 _ . : -, or a value is too long or unsafe.",
            "Fix the tags and send again; the refused tags are not echoed on this event.",
        ),
    )
    TAGS_TOO_MANY = (
        "tags_too_many",
        rejected(
            "Over 32 tags.", "Send at most 32 tags; the refused tags are not echoed on this event."
        ),
    )
    REQUEST_TOO_LARGE = (
        "request_too_large",
        rejected(
            "The encoded request is over the configured maximum (900 KiB by default).",
            "Send smaller content or fewer attachments.",
        ),
    )
    SUPPRESSED = (
        "suppressed",
        ReasonInfo(
            (EventType.SUPPRESSED,),
            (_I,),
            Suppresses.NO,
            "The recipient is on the tenant's suppression list.",
            "Do not resend; an operator may lift it with `mailstream suppressions remove`.",
        ),
    )

    # expiry (ingest before accepting; router and sender before each attempt)
    EXPIRED = (
        "expired",
        expired(
            "The request's own expires_at passed before delivery.",
            "Nothing, or send a fresh message with a new expires_at if still useful.",
            by=(_I, _R, _S),
        ),
    )
    MAX_AGE_EXCEEDED = (
        "max_age_exceeded",
        expired(
            "The priority's maximum age ran out (critical 15 min, transactional 72 h, bulk 24 h).",
            "Look at the DEFERRED events before it for the cause; resend only if still useful.",
            by=(_R, _S),
        ),
    )

    # any service that gave up on a record
    INTERNAL_ERROR = (
        "internal_error",
        rejected(
            "Handling kept raising; the record is on mailstream.internal.dlq.",
            "Report it with the message_id (`mailstream dlq list --internal` shows the record).",
            by=(_I, _R, _S),
        ),
    )

    # router: DNS, routing, templates, size
    NO_SUCH_DOMAIN = (
        "no_such_domain",
        no_route("The recipient's domain does not exist (NXDOMAIN); category bad_domain."),
    )
    NULL_MX = (
        "null_mx",
        no_route(
            "The domain publishes a null MX (RFC 7505): it accepts no mail; category bad_domain."
        ),
    )
    NO_MX = (
        "no_mx",
        no_route("The domain has neither MX nor address records; category bad_domain."),
    )
    DNS_TEMPORARY_FAILURE = (
        "dns_temporary_failure",
        deferred(
            "The MX lookup failed for now (timeout, SERVFAIL).",
            "Nothing: mailstream retries until the message expires.",
            by=_R,
        ),
    )
    ROUTE_UNAVAILABLE = (
        "route_unavailable",
        deferred(
            "The tenant's route names an egress pool or smarthost this deployment does not define.",
            "Nothing; mailstream retries. Tell the operator: the tenant's route needs fixing.",
            by=_R,
        ),
    )
    MTA_STS_MX_MISMATCH = (
        "mta_sts_mx_mismatch",
        deferred(
            "The domain's enforced MTA-STS policy matches none of its MX hosts.",
            "Nothing: mailstream retries; the receiving domain has to fix its policy or MX.",
            by=_R,
        ),
    )
    TEMPLATE_NOT_FOUND = (
        "template_not_found",
        rejected(
            "No stored template of that name, version and locale for the tenant.",
            "Apply the template (`mailstream templates apply`) or name one that exists, then send "
            "again under a new message_id.",
            by=(_R,),
        ),
    )
    TEMPLATE_DATA_MISSING = (
        "template_data_missing",
        rejected(
            "template_data_json lacks a variable the template requires.", FIX_NEW_ID, by=(_R,)
        ),
    )
    TEMPLATE_DATA_INVALID = (
        "template_data_invalid",
        rejected("template_data_json is not a JSON object.", FIX_NEW_ID, by=(_R,)),
    )
    RENDER_FAILED = (
        "render_failed",
        rejected(
            "The template failed to render (an error, a time or size limit, a line break in the "
            "subject).",
            "Fix the template or its data, then send again under a new message_id.",
            by=(_R,),
        ),
    )
    MESSAGE_TOO_LARGE = (
        "message_too_large",
        ReasonInfo(
            (EventType.REJECTED, *SMTP),
            (_R, _S),
            Suppresses.NO,
            "The built message is over the router's limit (6 MiB), or the MX refused its size.",
            "Send a smaller message (content, attachments) under a new message_id.",
        ),
    )

    # sender: its own keys
    DKIM_KEY_UNAVAILABLE = (
        "dkim_key_unavailable",
        deferred(
            "A DKIM key configured for the sender domain cannot be loaded: the mail waits for it.",
            "Nothing; mailstream retries. Tell the operator: the key file needs fixing.",
            by=_S,
        ),
    )

    # sender: the category of an SMTP reply (services/sender/outcome.py), also Bounce.category
    INVALID_RECIPIENT = (
        "invalid_recipient",
        smtp(
            "The MX says the mailbox does not exist.",
            "Do not resend; correct or drop the address.",
            Suppresses.HARD_FOR_GOOD,
        ),
    )
    BAD_DOMAIN = (
        "bad_domain",
        smtp(
            "The MX says the recipient's domain does not exist or takes no mail.",
            "Do not resend; correct the address.",
            Suppresses.HARD_FOR_GOOD,
        ),
    )
    DISABLED_MAILBOX = (
        "disabled_mailbox",
        smtp(
            "The mailbox exists but is disabled or suspended.",
            "Do not resend for now; ask the recipient for another address.",
            Suppresses.HARD_EXPIRING,
        ),
    )
    QUOTA = (
        "quota",
        smtp(
            "The mailbox or the receiving system is full.",
            "Nothing while DEFERRED; after a bounce, try again later or another channel.",
            Suppresses.SOFT_COUNTED,
        ),
    )
    SPAM_BLOCK = (
        "spam_block",
        smtp(
            "The receiver blocked the mail as spam or for the sending IP's reputation.",
            "Review the content and the sending reputation; resending as is will fail again.",
        ),
    )
    CONTENT = (
        "content",
        smtp(
            "The receiver refused the content (virus, attachment type).",
            "Change the content or attachments, then send again.",
        ),
    )
    POLICY = (
        "policy",
        smtp(
            "The receiver's local policy refused the mail.",
            "Read the SMTP reply on the event; resending as is will fail again.",
        ),
    )
    AUTHENTICATION = (
        "authentication",
        smtp(
            "SPF, DKIM or DMARC failed at the receiver, or a smarthost refused our login.",
            "Tell the operator: the sender domain's DNS or the smarthost credentials need fixing.",
        ),
    )
    BAD_SENDER = (
        "bad_sender",
        smtp(
            "The receiver refused the sender address.",
            "Send from another address of a verified sender domain.",
        ),
    )
    RELAY_DENIED = (
        "relay_denied",
        smtp(
            "The MX does not accept mail for this recipient's domain.",
            "Do not resend; check the address.",
            Suppresses.HARD_EXPIRING,
        ),
    )
    TOO_MANY_RECIPIENTS = (
        "too_many_recipients",
        smtp(
            "The receiver refused for too many recipients.",
            "Nothing while DEFERRED; after a bounce, send to fewer recipients per message.",
        ),
    )
    ROUTING = (
        "routing",
        smtp(
            "The mail could not be routed to the recipient's mailbox (loop, unroutable host).",
            "Do not resend for now; check the address.",
            Suppresses.HARD_EXPIRING,
        ),
    )
    DNS_FAILURE = (
        "dns_failure",
        smtp(
            "A DNS failure on the receiving side.",
            "Nothing while DEFERRED; after a bounce, try again later.",
            Suppresses.SOFT_COUNTED,
        ),
    )
    TLS = (
        "tls",
        smtp(
            "TLS failed or was required and missing (MTA-STS, tls_required domains).",
            "Nothing while DEFERRED; tell the operator if it persists.",
        ),
    )
    PROTOCOL = (
        "protocol",
        smtp(
            "An SMTP protocol error, or a non-ASCII address where no MX offers SMTPUTF8.",
            "Report it if it persists; for SMTPUTF8, use an ASCII address.",
        ),
    )
    RATE_LIMITED = (
        "rate_limited",
        smtp(
            "The receiver throttled us.",
            "Nothing while DEFERRED: mailstream retries and paces; after a bounce, try later.",
            Suppresses.SOFT_COUNTED,
        ),
    )
    GREYLISTED = (
        "greylisted",
        smtp(
            "The receiver greylisted the first attempt.",
            "Nothing: mailstream retries.",
            Suppresses.SOFT_COUNTED,
        ),
    )
    MESSAGE_EXPIRED = (
        "message_expired",
        smtp(
            "A relay on the receiving side gave up on the mail as too old.",
            "Resend if still useful.",
            Suppresses.SOFT_COUNTED,
        ),
    )
    CONNECTION = (
        "connection",
        smtp(
            "No usable connection to the MX (refused, reset, timed out).",
            "Nothing while DEFERRED: mailstream retries; after a bounce, try later.",
            Suppresses.SOFT_COUNTED,
        ),
    )
    OTHER = (
        "other",
        smtp(
            "A reply no rule recognises; HARD only when it answers RCPT.",
            "Read the SMTP reply on the event; do not resend after a HARD bounce.",
            Suppresses.HARD_EXPIRING,
        ),
    )

    # the suppression list's own reasons (a HARD bounce's entry has its category instead)
    SOFT_BOUNCES = (
        "soft_bounces",
        entry(
            Service.EVENT_PUBLISHER,
            "3 counted SOFT bounces within 72 h; the entry lapses after 24 h.",
            "Expect SUPPRESSED until it lapses.",
        ),
    )
    COMPLAINT = (
        "complaint",
        entry(
            Service.EVENT_PUBLISHER,
            "The recipient complained (feedback loop, List-Unsubscribe); for good by default.",
            "Stop mailing the recipient.",
        ),
    )
    MANUAL = (
        "manual",
        entry(
            Service.CLI,
            "An operator added it (`mailstream suppressions add`, the default --reason).",
            "Expect SUPPRESSED until an operator removes it.",
        ),
    )

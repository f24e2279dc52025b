import pytest

from services.common.avro.records import BounceKind
from services.sender.outcome import Outcome, classify, enhanced_code


@pytest.mark.parametrize(
    ("code", "text", "outcome", "category", "kind"),
    [
        (250, "2.0.0 Ok: queued as ABC", Outcome.DELIVERED, "delivered", None),
        (451, "4.7.1 Greylisted, try again later", Outcome.DEFERRED, "policy", None),
        (452, "4.2.2 Mailbox full", Outcome.DEFERRED, "quota", None),
        (421, "Service not available", Outcome.DEFERRED, "connection", None),
        (550, "5.1.1 User unknown", Outcome.BOUNCED, "invalid_recipient", BounceKind.HARD),
        (550, "No such user here", Outcome.BOUNCED, "invalid_recipient", BounceKind.HARD),
        (
            553,
            "5.1.2 Bad destination system address",
            Outcome.BOUNCED,
            "bad_domain",
            BounceKind.HARD,
        ),
        (552, "5.3.4 Message too big", Outcome.BOUNCED, "message_too_large", BounceKind.HARD),
        (552, "5.2.2 Over quota", Outcome.BOUNCED, "quota", BounceKind.SOFT),
        (554, "5.7.1 Rejected: listed on a blocklist", Outcome.BOUNCED, "policy", BounceKind.SOFT),
        (550, "Message rejected as spam", Outcome.BOUNCED, "spam_block", BounceKind.SOFT),
        (554, "5.7.26 DMARC policy", Outcome.BOUNCED, "authentication", BounceKind.HARD),
        (599, "strange", Outcome.BOUNCED, "other", BounceKind.HARD),
    ],
)
def test_reply_classification(
    code: int, text: str, outcome: Outcome, category: str, kind: BounceKind | None
) -> None:
    result = classify(code, text)
    assert (result.outcome, result.category, result.bounce_kind) == (outcome, category, kind)


def test_no_reply_is_a_deferral_with_its_cause() -> None:
    result = classify(None, "Connection refused", connection_error="connection")
    assert result.outcome is Outcome.DEFERRED
    assert result.category == "connection"


def test_enhanced_code_parsing() -> None:
    assert enhanced_code("5.1.1 <x@y> unknown") == "5.1.1"
    assert enhanced_code("User unknown 5.1.1") is None

import pytest

from services.sender.shaping import DEFAULT_CLASSES, ProviderClass, Shaper, TokenBucket


def test_provider_classes_from_mx_host_names() -> None:
    shaper = Shaper(classes=list(DEFAULT_CLASSES))
    cases = {
        "aspmx.l.google.com": "google",
        "alt1.aspmx.l.google.com": "google",
        "acme-com.mail.protection.outlook.com": "microsoft",
        "mx1.hotmail.com": "microsoft",
        "mta5.am0.yahoodns.net": "yahoo",
        "mx.example.org": "other",
        "google.com.evil.example": "other",
    }
    for host, expected in cases.items():
        assert shaper.destination(host=host, address="192.0.2.1").provider.name == expected
    assert shaper.destination(host="mx.example.org", address="192.0.2.9").key == "192.0.2.9"
    assert shaper.destination(host="aspmx.l.google.com", address="x").key == "class:google"


def test_token_bucket_spaces_reservations_by_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=4, burst=1, clock=lambda: now[0])
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.25, 0.5]
    now[0] = 10.0
    assert bucket.reserve() == 0.0  # refilled, but never beyond the burst
    assert bucket.reserve() == 0.25


def test_extra_classes_come_first() -> None:
    slow = ProviderClass(name="slow", pattern=r"^slow\.", messages_per_second=2)
    shaper = Shaper(classes=[slow, *DEFAULT_CLASSES])
    destination = shaper.destination(host="slow.example", address="192.0.2.1")
    assert destination.provider.name == "slow"
    # A burst of one second's worth (2), then one every half second.
    assert [shaper.reserve(destination) for _ in range(3)] == pytest.approx([0, 0, 0.5], abs=0.01)

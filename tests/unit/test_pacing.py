from services.router.pacing import Pacer


def test_slots_are_spaced_by_the_rate_and_never_in_the_past() -> None:
    pacer = Pacer()
    slots = [pacer.slot("acme", rate_per_s=4, now_ms=1000) for _ in range(3)]
    assert slots == [1000, 1250, 1500]
    assert pacer.slot("acme", rate_per_s=4, now_ms=5000) == 5000  # idle time is not banked
    assert pacer.slot("other", rate_per_s=1, now_ms=1000) == 1000  # tenants are independent

from services.common.kafka.offsets import OffsetTracker

TP = ("t", 0)


def test_commit_never_passes_a_message_still_in_flight() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.begin(TP, offset)
    tracker.done(TP, 12)
    tracker.done(TP, 11)
    assert tracker.committable() == {TP: 10}
    tracker.done(TP, 10)
    assert tracker.committable() == {TP: 13}


def test_nothing_to_commit_before_anything_finished() -> None:
    tracker = OffsetTracker()
    tracker.begin(TP, 5)
    assert tracker.committable() == {}


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    other = ("t", 1)
    tracker.begin(TP, 1)
    tracker.begin(other, 7)
    tracker.done(other, 7)
    assert tracker.committable() == {other: 8}
    assert tracker.in_flight() == 1


def test_revoked_partition_is_forgotten_and_late_done_ignored() -> None:
    tracker = OffsetTracker()
    tracker.begin(TP, 3)
    tracker.forget([TP])
    tracker.done(TP, 3)
    assert tracker.committable() == {}
    assert tracker.in_flight() == 0


def test_committable_can_be_limited_to_some_partitions() -> None:
    tracker = OffsetTracker()
    other = ("t", 1)
    for tp in (TP, other):
        tracker.begin(tp, 0)
        tracker.done(tp, 0)
    assert tracker.committable([other]) == {other: 1}

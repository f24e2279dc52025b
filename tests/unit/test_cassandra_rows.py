"""Rows come back as the driver's default factory names them, from one class per column list."""

from cassandra.query import named_tuple_factory

from services.common.cassandra.session import named_rows


def test_rows_are_named_as_the_driver_names_them() -> None:
    columns = ["[applied]", "claimed_by", "expires_at"]
    rows = [(False, "ingest-1", None), (True, "ingest-2", 5)]
    ours, theirs = named_rows(columns, rows), named_tuple_factory(columns, rows)
    assert [r._asdict() for r in ours] == [r._asdict() for r in theirs]
    assert ours[0].applied is False and ours[1].claimed_by == "ingest-2"


def test_one_class_serves_every_result_with_the_same_columns() -> None:
    first = named_rows(["address", "expires_at"], [("a@b.c", None)])
    again = named_rows(["address", "expires_at"], [("d@e.f", 1)])
    assert type(first[0]) is type(again[0])
    assert named_rows(["address"], []) == []

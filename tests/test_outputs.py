"""Where an attempt's notebook goes: the default layout under ``[notebook] output_base`` and fresh names for retries."""

from __future__ import annotations

from airflow_notebook_provider.task.outputs import (
    LocationRecord,
    TaskInstanceId,
    attempt_variant,
    default_output,
    record_location,
)


def test_default_output_layout() -> None:
    # A piece that had to be cleaned keeps a short hash of the original, so that two run ids never share a folder.
    assert default_output(TaskInstanceId("d", "../..", "t"), 2, "/o") == "/o/d/_._..-0cfd1c96/t/attempt-2.ipynb"
    assert default_output(TaskInstanceId("d", "r", "t", 3), 1, "s3://b/p/") == "s3://b/p/d/r/t/map-3/attempt-1.ipynb"
    assert record_location(TaskInstanceId("d", "r", "t", 3), 1, "/o") == "/o/d/r/t/map-3/attempt-1.record.json"


def test_attempt_variant() -> None:
    assert attempt_variant("s3://b/x/report.ipynb", 2) == "s3://b/x/report.attempt-2.ipynb"
    assert attempt_variant("/x/report.ipynb", 2, 1) == "/x/report.attempt-2-1.ipynb"
    assert attempt_variant("report", 3) == "report.attempt-3"


def test_a_record_is_data_from_a_task_and_parsed_strictly() -> None:
    assert LocationRecord.parse({"location": "/o/x.ipynb", "conn_id": None, "try_number": 2}) == LocationRecord(
        "/o/x.ipynb", None, 2)
    for junk in (None, "x", {"location": ""}, {"location": 3}, ["/o/x.ipynb"]):
        assert LocationRecord.parse(junk) is None
    # A field of another type makes it no record (not a record with that field dropped); so does a serializer's
    # class marker: the api-server reads records as plain JSON.
    for junk in ({"location": "/o/x", "conn_id": 5, "try_number": 2}, {"location": "/o/x", "try_number": "2"},
                 {"location": "/o/x", "try_number": True}, {"location": "/o/x", "__classname__": "builtins.dict"}):
        assert LocationRecord.parse(junk) is None, junk
    assert LocationRecord.parse({"location": "/o/x"}) == LocationRecord("/o/x", None, None)

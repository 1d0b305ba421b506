"""Find a notebook's ``metadata.airflow`` without parsing (or holding) the whole notebook: the viewer's check of
a large notebook's identity before it streams it. Pure, no Airflow."""

from __future__ import annotations

import json
from typing import Any

_META_START = b'\n "metadata": {'
_META_END = b"\n }"
_AIRFLOW_START = b'\n  "airflow": {'
_AIRFLOW_END = b"\n  }"
AIRFLOW_META_MAX_BYTES = 8 * 1024 * 1024


def scan_airflow_metadata(file: Any, chunk: int = 1024 * 1024) -> Any:
    """The notebook's ``metadata.airflow`` object, read in chunks in bounded memory; None if there is none.

    Output notebooks are written as Jupyter writes them (nbformat: sorted keys, one space of indent per level), and
    JSON strings never hold a raw newline: a line that starts with exactly one space and ``"metadata": {`` is the
    notebook's own metadata, whatever the cells contain; its ``"airflow"`` key is the line with two spaces, up to
    the line ``  }`` that closes it. A notebook in another layout names no attempt here, so it is not served (the
    download of a notebook under ``viewer_max_bytes`` is checked by a full parse instead: see ``load``).
    """
    buffer = b""
    state = "metadata"
    captured = bytearray()
    while True:
        block = file.read(chunk)
        buffer += block
        if state == "metadata":
            at = buffer.find(_META_START)
            if at < 0:
                if not block:
                    return None
                buffer = buffer[-(len(_META_START) - 1):]
                continue
            buffer, state = buffer[at + len(_META_START) - 1:], "airflow"
        if state == "airflow":
            at, end = buffer.find(_AIRFLOW_START), buffer.find(_META_END)
            if 0 <= end and (at < 0 or end < at):
                return None
            if at < 0:
                if not block:
                    return None
                buffer = buffer[-(len(_AIRFLOW_START) - 1):]
                continue
            buffer, state = buffer[at + len(_AIRFLOW_START) - 1:], "capture"
        if state == "capture":
            end = buffer.find(_AIRFLOW_END)
            if end >= 0:
                captured += buffer[:end + len(_AIRFLOW_END)]
                try:
                    return json.loads(bytes(captured))
                except ValueError:
                    return None
            keep = len(_AIRFLOW_END) - 1
            captured += buffer[:-keep] if len(buffer) > keep else b""
            buffer = buffer[-keep:] if len(buffer) > keep else buffer
            if len(captured) > AIRFLOW_META_MAX_BYTES or not block:
                return None

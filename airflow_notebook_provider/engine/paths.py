"""Output locations: the default layout, safe path pieces, and a fresh name when a location is taken."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+:@-]")


def safe_piece(value: object) -> str:
    """One path segment that cannot climb out of its folder or name a hidden file: ``../x`` -> ``.._x``."""
    text = _UNSAFE.sub("_", str(value))
    if not text.strip("."):
        return "_" * max(len(text), 1)
    if text.startswith("."):
        text = "_" + text[1:]
    return text


def join(base: str, *pieces: str) -> str:
    return "/".join([base.rstrip("/"), *pieces])


def default_output(
    base: str, *, dag_id: str, run_id: str, task_id: str, map_index: int | None, try_number: int
) -> str:
    """``{base}/{dag_id}/{run_id}/{task_id}[/map-{map_index}]/attempt-{try_number}.ipynb``, each piece made safe."""
    pieces = [safe_piece(dag_id), safe_piece(run_id), safe_piece(task_id)]
    if map_index is not None and map_index >= 0:
        pieces.append(f"map-{int(map_index)}")
    pieces.append(f"attempt-{int(try_number)}.ipynb")
    return join(base, *pieces)


def attempt_variant(location: str, try_number: int, n: int = 0) -> str:
    """``x/report.ipynb`` -> ``x/report.attempt-2.ipynb`` (then ``...attempt-2-1.ipynb``): a name for a retry
    whose configured output already holds an earlier attempt's notebook, which must not be overwritten."""
    head, slash, name = location.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    suffix = f".attempt-{try_number}" + (f"-{n}" if n else "")
    new = f"{stem}{suffix}.{ext}" if ext else f"{stem}{suffix}"
    return f"{head}{slash}{new}"

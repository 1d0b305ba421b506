"""Which notebook ran: the DAG bundle, its version, the path inside it and the file's sha256.

A notebook given by a path relative to its DAG's bundle is the notebook *of that DAG version* (a git commit with
``GitDagBundle``): the task writes where it came from into ``metadata.airflow.notebook`` of its output (and into XCom
``notebook_record`` and the OpenLineage run facet), and the viewer, Compare and the CLI read it back from here.
Pure data: no Airflow, no I/O. A notebook is data its task wrote, so every field is read with its JSON type only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ORIGIN_KEY = "notebook"
"""Key under ``metadata.airflow`` of an output notebook (and in the attempt's ``notebook_record``)."""

_HEX = re.compile(r"[0-9a-f]{16,}")


@dataclass(frozen=True)
class NotebookOrigin:
    """A notebook read from a DAG bundle: ``bundle`` (its name), ``version`` (None for an unversioned bundle such as
    the local DAGs folder), ``path`` (POSIX, relative to the bundle's root) and ``sha256`` of the bytes that ran."""

    bundle: str | None
    version: str | None
    path: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "version": self.version, "path": self.path, "sha256": self.sha256}

    @property
    def label(self) -> str:
        """``<bundle>@<short version>`` (``dags-folder (unversioned)``; ``DAG file's folder`` under ``dag.test()``)."""
        if self.bundle is None:
            return "the DAG file's folder"
        return f"{self.bundle}@{short_version(self.version)}" if self.version else f"{self.bundle} (unversioned)"

    def describe(self) -> str:
        """``notebooks/report.ipynb at dags@1a2b3c4d``: what the viewer, Compare and the CLI say."""
        return f"{self.path} at {self.label}"


def short_version(version: str) -> str:
    """A git commit's first 8 hex digits; any other version as it is."""
    return version[:8] if _HEX.fullmatch(version) else version


def read_origin(nb: Mapping[str, Any]) -> NotebookOrigin | None:
    """The origin an output notebook records in ``metadata.airflow.notebook``, or None (an absolute path or URL ran,
    an older output, or a field of another type)."""
    meta = nb.get("metadata")
    airflow = meta.get("airflow") if isinstance(meta, Mapping) else None
    return parse_origin(airflow.get(ORIGIN_KEY) if isinstance(airflow, Mapping) else None)


def parse_origin(value: Any) -> NotebookOrigin | None:
    """An origin from its JSON form (``to_json``), or None for anything else."""
    if not isinstance(value, Mapping):
        return None
    bundle, version, path, sha = (value.get(k) for k in ("bundle", "version", "path", "sha256"))
    if not isinstance(path, str) or not isinstance(sha, str):
        return None
    if not isinstance(bundle, str | None) or not isinstance(version, str | None):
        return None
    return NotebookOrigin(bundle, version, path, sha)


def version_difference(a: NotebookOrigin | None, b: NotebookOrigin | None) -> str | None:
    """A sentence when runs A and B ran different versions (or paths) of their notebook; None when both ran the same
    one, or when neither records a bundle."""
    if a is None and b is None:
        return None
    if a is not None and b is not None and (a.bundle, a.version, a.path) == (b.bundle, b.version, b.path):
        return None
    side_a = a.describe() if a else "a notebook outside any bundle"
    side_b = b.describe() if b else "a notebook outside any bundle"
    return f"Different versions of the notebook: A ran {side_a}, B ran {side_b}."

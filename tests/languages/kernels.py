"""A real kernel by name, kept for a whole module (``kernel``); used by tests/languages' test modules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import start_new_kernel

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def kernel(name: str) -> Iterator[Any]:
    """A kernel kept for a whole module (a start per example would take minutes); skipped outside CI if absent."""
    if name not in KernelSpecManager().find_kernel_specs():
        if IN_CI:
            pytest.fail(f"CI is set but the {name!r} kernel is not installed: .ci/run and `make setup` install it")
        pytest.skip(f"no {name!r} kernel here (r-cran-irkernel from Debian; bash_kernel from PyPI)")
    km, kc = start_new_kernel(kernel_name=name, startup_timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

"""Fixtures and checks shared by the fault, bad-input, load and security suites."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.processes import TAG_VAR, tagged_kernels


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "load: starts a real scheduler, dag-processor and api-server (select with -m load, skip with -m 'not load')"
    )


@pytest.fixture
def own_kernels(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Callable[[], list[str]]:
    """Tag this test's kernels; call the result to list those still running."""
    tag = f"{os.getpid()}-{request.node.nodeid}"
    monkeypatch.setenv(TAG_VAR, tag)
    return lambda: tagged_kernels(tag)

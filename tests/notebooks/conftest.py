"""The viewer's real api-server app (``api``), shared with tests/viewer for the pages these tests open."""

from tests.viewer.conftest import api

__all__ = ["api"]

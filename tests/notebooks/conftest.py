"""The viewer's real api-server app (``api``, tests/viewer/client.py), shared with tests/viewer for the pages these
tests open."""

from tests.viewer.client import api

__all__ = ["api"]

"""``[core] hostname_callable`` for the distributed suite: each worker's name comes from ``ANP_HOSTNAME``.

Airflow records a task instance's ``hostname`` from this callable, so two workers on one machine show as two hosts
(the workers also get a UTS namespace of their own with that host name when ``unshare`` works).
"""

from __future__ import annotations

import os
import socket


def from_env() -> str:
    return os.environ.get("ANP_HOSTNAME") or socket.getfqdn()

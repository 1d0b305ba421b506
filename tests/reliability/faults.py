"""Kernel faults a cell can cause (``CASES``: name → source, execution settings, the error expected); used by
tests/reliability/test_kernel_faults.py and tests/engine/test_launcher.py."""

from __future__ import annotations

MEMORY_LIMIT = (
    "import resource\n"
    "size = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
    "resource.setrlimit(resource.RLIMIT_AS, (size + 300 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))\n"
    "block = bytearray(2 * 2**30)"
)

CASES = {
    "raises": ("raise ValueError('bad row 17')", {}, "ValueError: bad row 17"),
    "cell_timeout": ("import time; time.sleep(120)", {"cell_timeout": 2}, "CellTimeoutError: the cell ran longer than cell_timeout=2 s"),
    "os_exit": ("import os; os._exit(3)", {}, "DeadKernelError: the kernel died while running this cell (the kernel process exited with code 3"),
    "sigkill": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", {}, "killed by SIGKILL: the out-of-memory killer"),
    "memory_limit": (MEMORY_LIMIT, {}, "MemoryError"),
}

"""The task log's view of the cells: their stdout and stderr line by line as they arrive, and progress lines.

Bounded per cell (``log_output_limit`` characters, then one truncation note); the notebook always keeps
everything. A cell's progress lines ("cell 3/12 started", "... finished in") appear only once it has run
``QUIET_CELL_SECONDS`` or printed something: a line through Airflow's task log costs about a millisecond, and a
notebook of 200 quick cells paid 400 of them for lines that say nothing the output notebook does not.
"""

from __future__ import annotations

from airflow_notebook_provider.engine.log import Log

QUIET_CELL_SECONDS = 1.0


class CellLog:
    """One run's log of cell output; ``begin`` each cell, ``stream`` its output, ``end`` it."""

    def __init__(self, log: Log, *, enabled: bool, limit: int) -> None:
        self.log = log
        self.enabled = enabled
        self.limit = limit
        self._buf: dict[str, str] = {}
        self._chars = 0
        self._truncated = False
        self._position = (0, 0)
        self.announced = True

    def begin(self, number: int, total: int) -> None:
        """A runnable cell starts (1-based ``number`` of ``total`` cells); nothing is logged yet."""
        self._position, self.announced = (number, total), False
        self._chars, self._truncated = 0, False

    def announce(self) -> None:
        """Log that the current cell started, once: when it has run ``QUIET_CELL_SECONDS`` or prints something."""
        if not self.announced:
            self.announced = True
            self.log.info("cell %d/%d started", *self._position)

    def stream(self, name: str, text: str) -> None:
        """Output of the running cell on stream ``name`` (stdout, stderr): whole lines go to the log."""
        if not self.enabled or not text or self._truncated:
            return  # once the log is truncated, a flood of output costs nothing more here
        buf = self._buf.get(name, "") + text
        *lines, rest = buf.split("\n")
        if len(rest) > self.limit:  # one endless line: log it now rather than buffer it all
            lines.append(rest)
            rest = ""
        self._buf[name] = rest
        for line in lines:
            self._line(name, line)

    def flush(self) -> None:
        """Log what is left of unfinished lines (the cell ended)."""
        for name, rest in self._buf.items():
            if rest:
                self._line(name, rest)
        self._buf.clear()

    def _line(self, name: str, line: str) -> None:
        if self._truncated:
            return
        if self._chars + len(line) > self.limit:
            self._truncated = True
            self.log.warning(
                "[%s] ... output of this cell truncated in the log after %d characters; "
                "the output notebook keeps all of it", name, self._chars,
            )
            return
        self._chars += len(line) + 1
        self.announce()
        self.log.info("[%s] %s", name, line)
